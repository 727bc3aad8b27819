package queue

import (
	"encoding/binary"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// The schedule as a table of instants: what follows each attempt, with
// the jitter drawn at its middle (rnd 0.5: the delay as written), its
// ends, and a backend's Retry-After.
func TestPolicyDecide(t *testing.T) {
	p := Policy{Delays: []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute}, MaxAttempts: 5, MaxAge: time.Hour,
		RetryOn: DefaultRetryOn, Retain: 0}
	it := func(attempts int, received time.Time) *Item { return &Item{Attempts: attempts, Received: received} }
	for _, c := range []struct {
		name      string
		item      *Item
		a         Attempt
		rnd       float64
		next      time.Duration // from t0; 0: none
		dead      bool
		delivered bool
	}{
		{"200 delivers", it(0, t0), Attempt{Status: 200}, 0.5, 0, false, true},
		{"204 delivers", it(3, t0), Attempt{Status: 204}, 0.5, 0, false, true},
		{"first failure: the first delay", it(0, t0), Attempt{Status: 503}, 0.5, 10 * time.Second, false, false},
		{"jitter low end", it(0, t0), Attempt{Status: 503}, 0, 9 * time.Second, false, false},
		{"jitter high end", it(0, t0), Attempt{Status: 503}, 1, 11 * time.Second, false, false},
		{"second failure: the second delay", it(1, t0), Attempt{Status: 500}, 0.5, time.Minute, false, false},
		{"past the schedule: the last delay repeats", it(3, t0), Attempt{Status: 0, Error: "refused"}, 0.5, 5 * time.Minute, false, false},
		{"max_attempts reached", it(4, t0), Attempt{Status: 503}, 0.5, 0, true, false},
		{"transport error retried", it(0, t0), Attempt{Status: 0}, 0.5, 10 * time.Second, false, false},
		{"408 retried", it(0, t0), Attempt{Status: 408}, 0.5, 10 * time.Second, false, false},
		{"425 retried", it(0, t0), Attempt{Status: 425}, 0.5, 10 * time.Second, false, false},
		{"429 with Retry-After 120s", it(0, t0), Attempt{Status: 429, RetryAfter: 2 * time.Minute}, 0.5, 2 * time.Minute, false, false},
		{"Retry-After below the schedule: its first delay", it(0, t0), Attempt{Status: 429, RetryAfter: time.Second}, 0.5, 10 * time.Second, false, false},
		{"Retry-After above the schedule: its last delay", it(0, t0), Attempt{Status: 503, RetryAfter: 24 * time.Hour}, 0.5, 5 * time.Minute, false, false},
		{"400 is dead at once", it(0, t0), Attempt{Status: 400}, 0.5, 0, true, false},
		{"404 is dead at once", it(2, t0), Attempt{Status: 404}, 0.5, 0, true, false},
		{"301 is dead at once", it(0, t0), Attempt{Status: 301}, 0.5, 0, true, false},
		{"max_age: the next attempt would be too late", it(1, t0.Add(-59*time.Minute-30*time.Second)), Attempt{Status: 503}, 0.5, 0, true, false},
	} {
		o := p.Decide(c.item, c.a, t0, c.rnd)
		var next time.Duration
		if !o.Next.IsZero() {
			next = o.Next.Sub(t0)
		}
		if o.Delivered != c.delivered || o.Dead != c.dead || next != c.next {
			t.Errorf("%s: delivered %v dead %v next %v, want %v %v %v", c.name, o.Delivered, o.Dead, next, c.delivered, c.dead, c.next)
		}
	}
	p.Retain = time.Hour
	if o := p.Decide(it(0, t0), Attempt{Status: 200}, t0, 0.5); !o.Delivered || !o.RetainUntil.Equal(t0.Add(time.Hour)) {
		t.Errorf("retain: %+v", o)
	}
}

func TestParseRetryOn(t *testing.T) {
	r, err := ParseRetryOn([]string{"503", "4xx"})
	if err != nil || r.Retries(0) || !r.Retries(503) || r.Retries(500) || !r.Retries(404) {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []string{"200", "5x", "99", "abc", "6xx"} {
		if _, err := ParseRetryOn([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if d := ParseRetryAfter("120", t0); d != 2*time.Minute {
		t.Errorf("Retry-After 120: %v", d)
	}
	if d := ParseRetryAfter(t0.Add(time.Minute).Format(http.TimeFormat), t0); d != time.Minute {
		t.Errorf("Retry-After date: %v", d)
	}
	for _, v := range []string{"", "-1", "soon", "0"} {
		if d := ParseRetryAfter(v, t0); d != 0 {
			t.Errorf("Retry-After %q: %v", v, d)
		}
	}
}

func openTemp(t *testing.T) (*LocalStore, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "q", "test.db")
	s, err := OpenLocal(path)
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

func add(t *testing.T, s Store, at time.Time, body string) string {
	t.Helper()
	id := NewID(at)
	req := &Request{Method: "POST", URI: "/hook?x=1", Host: "h", Proto: "HTTP/1.1", RemoteAddr: "1.2.3.4:5", Header: http.Header{"X-A": {"secret-ish"}}}
	if err := s.Add(&Item{ID: id, Received: at, Due: at, Provider: "github"}, req, []byte(body)); err != nil {
		t.Fatal(err)
	}
	return id
}

func stats(t *testing.T, s Store) Stats {
	t.Helper()
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Every state change, with the counts kept right in the same
// transaction: add, due, retry later, dead, redrive, delivered
// (retained, expired), drop.
func TestLocalStoreStates(t *testing.T) {
	s, _ := openTemp(t)
	defer s.Close()
	a := add(t, s, t0, "aaaa")
	b := add(t, s, t0.Add(time.Second), "bb")
	if st := stats(t, s); st.Pending != 2 || st.Bytes != 6 || !st.Oldest.Equal(t0) {
		t.Fatalf("after two adds: %+v", st)
	}
	due, err := s.Due(t0.Add(2*time.Second), 10, nil)
	if err != nil || len(due) != 2 || due[0].ID != a {
		t.Fatalf("due: %v %v", due, err)
	}
	if due, _ := s.Due(t0.Add(2*time.Second), 10, func(id string) bool { return id == a }); len(due) != 1 || due[0].ID != b {
		t.Fatalf("due, skipping a: %v", due)
	}
	// a fails: due in 10s.
	if err := s.Finish([]Finished{{ID: a, Outcome: Outcome{Next: t0.Add(10 * time.Second), Status: 503}}}); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.Due(t0.Add(5*time.Second), 10, nil); len(due) != 1 || due[0].ID != b {
		t.Fatalf("a is not due before its time: %v", due)
	}
	if next, ok, _ := s.NextDue(); !ok || !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("next due %v %v", next, ok)
	}
	// b is dead.
	if err := s.Finish([]Finished{{ID: b, Outcome: Outcome{Dead: true, Status: 400, Error: "status 400 is not retried"}}}); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, s); st.Pending != 1 || st.Dead != 1 || st.Bytes != 6 {
		t.Fatalf("after a retry and a dead: %+v", st)
	}
	dead, _ := s.List(StateDead, "", 10)
	if len(dead) != 1 || dead[0].ID != b || dead[0].Attempts != 1 || dead[0].LastStatus != 400 {
		t.Fatalf("dead listing: %+v", dead)
	}
	if err := s.Retry(a, t0); !errors.Is(err, ErrWrongState) {
		t.Fatalf("retrying a pending item: %v", err)
	}
	if n, err := s.Redrive(t0.Add(20 * time.Second)); err != nil || n != 1 {
		t.Fatalf("redrive: %d %v", n, err)
	}
	if st := stats(t, s); st.Pending != 2 || st.Dead != 0 {
		t.Fatalf("after redrive: %+v", st)
	}
	// a delivered and retained for an hour; b delivered and dropped.
	if err := s.Finish([]Finished{{ID: a, Outcome: Outcome{Delivered: true, Status: 200, RetainUntil: t0.Add(time.Hour)}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish([]Finished{{ID: b, Outcome: Outcome{Delivered: true, Status: 204}}}); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, s); st.Pending != 0 || st.Retained != 1 || st.Bytes != 0 || !st.Oldest.IsZero() {
		t.Fatalf("after delivery: %+v", st)
	}
	if _, _, _, err := s.Load(b); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a delivered item without retain is gone: %v", err)
	}
	if _, req, body, err := s.Load(a); err != nil || string(body) != "aaaa" || req.URI != "/hook?x=1" || req.Header.Get("X-A") != "secret-ish" {
		t.Fatalf("the retained item: %v %q %+v", err, body, req)
	}
	if n, _ := s.Expire(t0.Add(30 * time.Minute)); n != 0 {
		t.Fatalf("expired %d before its time", n)
	}
	if n, _ := s.Expire(t0.Add(2 * time.Hour)); n != 1 {
		t.Fatalf("expired %d after its time", n)
	}
	c := add(t, s, t0, "c")
	if err := s.Drop(c); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, s); st.Pending != 0 || st.Retained != 0 || st.Dead != 0 || st.Bytes != 0 {
		t.Fatalf("at the end: %+v", st)
	}
	if err := s.Drop(c); !errors.Is(err, ErrNotFound) {
		t.Fatalf("dropping twice: %v", err)
	}
	// Pause survives a reopen.
	if err := s.SetPaused(true); err != nil || !stats(t, s).Paused {
		t.Fatal("pause not recorded")
	}
}

// What Add returned nil for is on disk: reopened (as after a crash), the
// items are there, due, with their bodies; a transaction cut short
// leaves nothing half-written, and a torn newest meta page makes bbolt
// fall back to the previous transaction, never to garbage.
func TestLocalStoreCrashSafety(t *testing.T) {
	s, path := openTemp(t)
	var ids []string
	for i := range 50 {
		ids = append(ids, add(t, s, t0.Add(time.Duration(i)*time.Millisecond), "body"))
	}
	// The process "dies": the file is copied as it is on disk, without
	// Close (no final sync beyond what each commit did).
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(t.TempDir(), "crashed.db")
	if err := os.WriteFile(crashed, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := OpenLocal(crashed)
	if err != nil {
		t.Fatal(err)
	}
	if st := stats(t, s2); st.Pending != 50 {
		t.Fatalf("after the crash: %+v", st)
	}
	due, _ := s2.Due(t0.Add(time.Hour), 100, nil)
	if len(due) != 50 || due[0].ID != ids[0] {
		t.Fatalf("due after the crash: %d", len(due))
	}
	s2.Close()

	// Tear the newest meta page (bbolt keeps two, each with a checksum,
	// and writes them alternately).
	torn := filepath.Join(t.TempDir(), "torn.db")
	raw2 := append([]byte(nil), raw...)
	db, err := bolt.Open(crashed, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	pageSize := db.Info().PageSize
	db.Close()
	// A meta page: a 16-byte page header, then magic, version, page
	// size, flags (4 bytes each), the root bucket (16), the freelist and
	// high-water page ids (8 each), then the txid (8): at offset 64.
	txid := func(page int) uint64 { return binary.LittleEndian.Uint64(raw2[page*pageSize+64:]) }
	newest := 0
	if txid(1) > txid(0) {
		newest = 1
	}
	for i := 32; i < 64; i++ {
		raw2[newest*pageSize+i] ^= 0xff
	}
	if err := os.WriteFile(torn, raw2, 0o600); err != nil {
		t.Fatal(err)
	}
	s3, err := OpenLocal(torn)
	if err != nil {
		t.Fatalf("a torn meta page: %v", err)
	}
	defer s3.Close()
	if st := stats(t, s3); st.Pending != 49 {
		t.Fatalf("after a torn last commit: %+v, want the 49 of the commit before", st)
	}
	for _, id := range ids[:49] {
		if _, _, body, err := s3.Load(id); err != nil || string(body) != "body" {
			t.Fatalf("%s after the torn commit: %v %q", id, err, body)
		}
	}
}

func TestIDs(t *testing.T) {
	a, b := NewID(t0), NewID(t0.Add(time.Nanosecond))
	if !(a < b) || !validID(a) || validID(a+"0") || validID("zz") {
		t.Fatalf("%s %s", a, b)
	}
	if got, ok := idTime(a); !ok || !got.Equal(t0) {
		t.Fatalf("idTime %v", got)
	}
}

// The group commit: concurrent accepts share transactions; one that
// cannot be stored (a key beyond bbolt's limit) fails alone, the others
// in its group are stored; an accept racing Close either was stored (and
// is there after a reopen) or got an error, never a nil for nothing.
func TestLocalStoreGroupCommit(t *testing.T) {
	s, path := openTemp(t)
	req := &Request{Method: "POST", URI: "/", Header: http.Header{}}
	const n = 64
	errs := make([]error, n)
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		ids[i] = NewID(t0.Add(time.Duration(i)))
		if i == n/2 {
			ids[i] = strings.Repeat("x", bolt.MaxKeySize+1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Add(&Item{ID: ids[i], Received: t0, Due: t0}, req, []byte("b"))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (err != nil) != (i == n/2) {
			t.Fatalf("accept %d: %v", i, err)
		}
	}
	if st := stats(t, s); st.Pending != n-1 {
		t.Fatalf("pending %d, want %d", st.Pending, n-1)
	}

	// Close while accepts are arriving.
	stored := make(chan string, 1000)
	var wg2 sync.WaitGroup
	for w := range 8 {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			for i := range 100 {
				id := NewID(t0.Add(time.Hour + time.Duration(w*1000+i)))
				if s.Add(&Item{ID: id, Received: t0, Due: t0}, req, []byte("b")) == nil {
					stored <- id
				}
			}
		}()
	}
	time.Sleep(time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg2.Wait()
	close(stored)
	s2, err := OpenLocal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	count := 0
	for id := range stored {
		count++
		if _, _, body, err := s2.Load(id); err != nil || string(body) != "b" {
			t.Fatalf("%s was acknowledged before Close but is not stored: %v", id, err)
		}
	}
	if st := stats(t, s2); st.Pending != int64(n-1+count) {
		t.Fatalf("pending %d after the reopen, want %d", st.Pending, n-1+count)
	}
}
