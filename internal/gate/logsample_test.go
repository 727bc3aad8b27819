package gate

import (
	"sync"
	"testing"
	"time"
)

func TestLogSamplerBoundsAndCounts(t *testing.T) {
	s := LogSampler{PerSecond: 3}
	t0 := time.Unix(1_800_000_000, 0)
	var written int
	var reported int64
	step := func(at time.Time, wantOK bool, wantSuppressed int64) {
		t.Helper()
		ok, n := s.Allow(at)
		if ok != wantOK || n != wantSuppressed {
			t.Fatalf("Allow(%v) = %v, %d; want %v, %d", at.Sub(t0), ok, n, wantOK, wantSuppressed)
		}
		if ok {
			written++
			reported += n
		}
	}
	for i := 0; i < 3; i++ {
		step(t0.Add(time.Duration(i)*time.Millisecond), true, 0)
	}
	for i := 0; i < 5; i++ {
		step(t0.Add(500*time.Millisecond), false, 0)
	}
	// The next second's first line reports the 5.
	step(t0.Add(time.Second), true, 5)
	step(t0.Add(time.Second+time.Millisecond), true, 0)
	step(t0.Add(time.Second+2*time.Millisecond), true, 0)
	step(t0.Add(time.Second+3*time.Millisecond), false, 0)
	step(t0.Add(10*time.Second), true, 1)
	if written+int(reported) != 3+5+3+1+1 {
		t.Fatalf("%d written + %d reported suppressed != 13 events", written, reported)
	}
}

// TestLogSamplerConcurrent: under contention within one second exactly
// PerSecond lines get through and every other event is counted.
func TestLogSamplerConcurrent(t *testing.T) {
	s := LogSampler{}
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for i := 0; i < 500; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := s.Allow(now); ok {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	_, n := s.Allow(now.Add(time.Second))
	if allowed != DefaultLogsPerSecond || n != 500-DefaultLogsPerSecond {
		t.Fatalf("allowed %d, then reported %d suppressed; want %d and %d", allowed, n, DefaultLogsPerSecond, 500-DefaultLogsPerSecond)
	}
}
