package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// step is one event at an instant (offset from the start) and what the
// limiter must answer.
type step struct {
	at        time.Duration
	allowed   bool
	remaining int64
	retry     time.Duration // for denied events
}

func runSteps(t *testing.T, l Limit, steps []step) {
	t.Helper()
	const start = int64(1_800_000_000) * int64(time.Second)
	var tat int64
	for i, s := range steps {
		var d Decision
		tat, d = l.Decide(tat, start+int64(s.at))
		if d.Allowed != s.allowed || d.Remaining != s.remaining || (!s.allowed && d.RetryAfter != s.retry) {
			t.Fatalf("step %d at +%v: got allowed=%v remaining=%d retry=%v, want allowed=%v remaining=%d retry=%v",
				i, s.at, d.Allowed, d.Remaining, d.RetryAfter, s.allowed, s.remaining, s.retry)
		}
	}
}

func TestGCRA10PerMinute(t *testing.T) {
	// rate 10/1m: 10 at once from idle, then one every 6 s.
	l := Limit{Rate: 10, Window: time.Minute}
	var steps []step
	for i := int64(0); i < 10; i++ {
		steps = append(steps, step{0, true, 9 - i, 0})
	}
	steps = append(steps,
		step{0, false, 0, 6 * time.Second},
		step{time.Second, false, 0, 5 * time.Second},
		step{6*time.Second - 1, false, 0, 1},
		step{6 * time.Second, true, 0, 0},
		step{6 * time.Second, false, 0, 6 * time.Second},
		step{12 * time.Second, true, 0, 0},
		// Idle for a full minute refills the whole burst.
		step{72 * time.Second, true, 9, 0},
	)
	runSteps(t, l, steps)
}

func TestGCRABurst(t *testing.T) {
	// rate 60/1m burst 3: three at once, then one per second.
	l := Limit{Rate: 60, Window: time.Minute, Burst: 3}
	runSteps(t, l, []step{
		{0, true, 2, 0},
		{0, true, 1, 0},
		{0, true, 0, 0},
		{0, false, 0, time.Second},
		{500 * time.Millisecond, false, 0, 500 * time.Millisecond},
		{time.Second, true, 0, 0},
		{2500 * time.Millisecond, true, 0, 0}, // 1.5 s of credit earned, 1 s spent
		{3 * time.Second, true, 0, 0},
		{3 * time.Second, false, 0, time.Second},
		// After 3 idle seconds, the burst is back.
		{7 * time.Second, true, 2, 0},
	})
}

func TestGCRASevenPerSecond(t *testing.T) {
	// 1s/7 is not a whole number of nanoseconds: the interval rounds up
	// to 142857143 ns so the rate is never exceeded.
	l := Limit{Rate: 7, Window: time.Second}
	if got := l.Interval(); got != 142857143 {
		t.Fatalf("interval %d", got)
	}
	var steps []step
	for i := int64(0); i < 7; i++ {
		steps = append(steps, step{0, true, 6 - i, 0})
	}
	steps = append(steps,
		step{0, false, 0, 142857143},
		step{142857142, false, 0, 1},
		step{142857143, true, 0, 0},
		// At +1 s the TAT is 8 intervals past the start; admitting one
		// leaves floor((1 s - 2 intervals) / interval) = 4.
		step{time.Second, true, 4, 0},
		step{time.Second, true, 3, 0},
	)
	runSteps(t, l, steps)
	// Over any stretch, no more than 7 per second get through.
	var tat int64
	admitted := 0
	for ms := int64(0); ms < 10_000; ms++ {
		var d Decision
		tat, d = l.Decide(tat, ms*int64(time.Millisecond))
		if d.Allowed {
			admitted++
		}
	}
	if admitted > 7+7*10 || admitted < 7*10 {
		t.Fatalf("admitted %d in 10 s at 7/1s", admitted)
	}
}

func TestGCRAOnePerHour(t *testing.T) {
	l := Limit{Rate: 1, Window: time.Hour}
	runSteps(t, l, []step{
		{0, true, 0, 0},
		{time.Second, false, 0, time.Hour - time.Second},
		{59 * time.Minute, false, 0, time.Minute},
		{time.Hour, true, 0, 0},
		{time.Hour + time.Nanosecond, false, 0, time.Hour - time.Nanosecond},
	})
}

func TestGCRARetryAfterHeaderRounding(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int64
	}{{1, 1}, {time.Second, 1}, {time.Second + 1, 2}, {5500 * time.Millisecond, 6}, {time.Hour, 3600}} {
		if got := ceilSeconds(c.d); got != c.want {
			t.Errorf("ceilSeconds(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}

func TestLimitValidate(t *testing.T) {
	for _, l := range []Limit{{0, time.Minute, 0}, {10, 0, 0}, {10, time.Minute, -1}, {2_000_000, time.Second, 0}} {
		if l.Validate() == nil {
			t.Errorf("%+v validated", l)
		}
	}
	if err := (Limit{7, time.Second, 0}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestMemoryStoreConcurrentExact(t *testing.T) {
	// 200 goroutines on one key with 10/1m admit exactly 10.
	now := time.Unix(1_800_000_000, 0)
	s := NewMemoryStore(0, func() time.Time { return now })
	l := Limit{Rate: 10, Window: time.Minute}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			d, err := s.Take(context.Background(), "203.0.113.7", l)
			if err != nil {
				t.Error(err)
			}
			if d.Allowed {
				admitted.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if got := admitted.Load(); got != 10 {
		t.Fatalf("admitted %d, want exactly 10", got)
	}
}

func TestMemoryStoreKeysAreSeparate(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := NewMemoryStore(0, func() time.Time { return now })
	l := Limit{Rate: 1, Window: time.Minute}
	for _, k := range []string{"a", "b", "c"} {
		if d, _ := s.Take(context.Background(), k, l); !d.Allowed {
			t.Fatalf("first event of %q denied", k)
		}
	}
	if d, _ := s.Take(context.Background(), "a", l); d.Allowed {
		t.Fatal("second event of a admitted")
	}
}

func TestMemoryStoreBoundAndEviction(t *testing.T) {
	var clock atomic.Int64
	clock.Store(int64(1_800_000_000) * int64(time.Second))
	const max = 10_000
	// The bound may be passed by at most one key per shard: a new key in an
	// empty shard has nothing there to evict.
	const bound = max + shardCount
	s := NewMemoryStore(max, func() time.Time { return time.Unix(0, clock.Load()) })
	l := Limit{Rate: 1, Window: time.Hour}
	for i := 0; i < 50_000; i++ {
		s.Take(context.Background(), "key-"+itoa(i), l)
	}
	if n := s.Len(); n > bound || n < max-shardCount {
		t.Fatalf("store holds %d keys, bound %d", n, bound)
	}
	// Drained state is dropped lazily: once everything has drained, new
	// keys sweep old ones out instead of evicting live ones.
	clock.Add(int64(2 * time.Hour))
	for i := 0; i < 5_000; i++ {
		s.Take(context.Background(), "later-"+itoa(i), l)
	}
	if n := s.Len(); n > bound {
		t.Fatalf("store holds %d keys after draining, bound %d", n, bound)
	}
}

func TestMemoryStoreDropsDrainedState(t *testing.T) {
	var clock atomic.Int64
	s := NewMemoryStore(0, func() time.Time { return time.Unix(0, clock.Load()) })
	l := Limit{Rate: 10, Window: time.Second}
	for i := 0; i < 10_000; i++ {
		s.Take(context.Background(), "old-"+itoa(i), l)
	}
	clock.Add(int64(time.Minute))
	for i := 0; i < 10_000; i++ {
		s.Take(context.Background(), "new-"+itoa(i), l)
	}
	// Each new key checks two entries; drained old ones go, so the store
	// holds far fewer than the 20,000 keys it has seen.
	if n := s.Len(); n > 15_000 {
		t.Fatalf("store holds %d keys; drained state is not dropped", n)
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			break
		}
	}
	return string(b[n:])
}
