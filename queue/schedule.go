package queue

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultRetry is the schedule of delays between attempts: quick at
// first (a deploy, a restart), then spread over a day, as the hosted
// gateways do.
var DefaultRetry = []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}

// DefaultMaxAge ends an item that has not been delivered after 72 hours.
const DefaultMaxAge = 72 * time.Hour

// Policy decides what follows an attempt. It is a pure function of its
// inputs (the clock and the jitter are parameters), so the schedule is
// tested as a table of instants.
type Policy struct {
	// Delays between attempts: after attempt n, Delays[n-1], the last
	// one repeating.
	Delays []time.Duration
	// MaxAttempts ends an item as dead after that many attempts.
	MaxAttempts int
	// MaxAge ends an item as dead when its next attempt would start
	// later than this after it was received.
	MaxAge time.Duration
	// RetryOn says which statuses are retried; transport errors always
	// are, unless NoTransport.
	RetryOn RetryOn
	// Retain keeps a delivered item this long (0: dropped at once).
	Retain time.Duration
	// Jitter spreads each delay by up to this fraction either way
	// (default 0.1).
	Jitter float64
}

// Attempt is what one attempt came back with.
type Attempt struct {
	// Status is the backend's status; 0 for a transport error.
	Status int
	// Error says what went wrong, for the listing (never a body).
	Error string
	// RetryAfter is the backend's Retry-After, if any.
	RetryAfter time.Duration
}

// Decide returns the outcome of an attempt on it (it.Attempts counts
// the attempts before this one) at now; rnd in [0,1) draws the jitter.
func (p *Policy) Decide(it *Item, a Attempt, now time.Time, rnd float64) Outcome {
	o := Outcome{Status: a.Status, Error: a.Error}
	if a.Status >= 200 && a.Status < 300 {
		o.Delivered = true
		if p.Retain > 0 {
			o.RetainUntil = now.Add(p.Retain)
		}
		return o
	}
	if !p.RetryOn.Retries(a.Status) {
		o.Dead = true
		if o.Error == "" {
			o.Error = "status " + strconv.Itoa(a.Status) + " is not retried"
		}
		return o
	}
	attempts := it.Attempts + 1
	if p.MaxAttempts > 0 && attempts >= p.MaxAttempts {
		o.Dead = true
		return o
	}
	delays := p.Delays
	if len(delays) == 0 {
		delays = DefaultRetry
	}
	d := delays[min(attempts-1, len(delays)-1)]
	jitter := p.Jitter
	if jitter == 0 {
		jitter = 0.1
	}
	d = time.Duration(float64(d) * (1 - jitter + 2*jitter*rnd))
	if a.RetryAfter > 0 {
		// The backend's word, within the schedule's bounds.
		d = min(max(a.RetryAfter, delays[0]), delays[len(delays)-1])
	}
	o.Next = now.Add(d)
	if p.MaxAge > 0 && o.Next.Sub(it.Received) > p.MaxAge {
		o.Dead, o.Next = true, time.Time{}
		if o.Error == "" {
			o.Error = "max_age reached"
		}
	}
	return o
}

// RetryOn is the set of statuses retried: single statuses and classes
// (4xx, 5xx); Transport for errors without a status.
type RetryOn struct {
	Statuses []int
	Classes  []int // 4 for 4xx, 5 for 5xx
	// NoTransport: transport errors are dead at once (never the default).
	NoTransport bool
}

// DefaultRetryOn retries transport errors, 408, 425, 429 and 5xx.
var DefaultRetryOn = RetryOn{Statuses: []int{408, 425, 429}, Classes: []int{5}}

// Retries reports whether status (0: a transport error) is retried.
func (r RetryOn) Retries(status int) bool {
	if status == 0 {
		return !r.NoTransport
	}
	for _, s := range r.Statuses {
		if s == status {
			return true
		}
	}
	for _, c := range r.Classes {
		if status/100 == c {
			return true
		}
	}
	return false
}

// ParseRetryOn reads retry_on's arguments: statuses (503), classes
// (5xx), and "transport".
func ParseRetryOn(args []string) (RetryOn, error) {
	r := RetryOn{NoTransport: true}
	for _, a := range args {
		switch {
		case a == "transport":
			r.NoTransport = false
		case len(a) == 3 && strings.HasSuffix(a, "xx") && a[0] >= '1' && a[0] <= '5':
			r.Classes = append(r.Classes, int(a[0]-'0'))
		default:
			n, err := strconv.Atoi(a)
			if err != nil || n < 100 || n > 599 {
				return r, fmt.Errorf("retry_on: %q is not a status (503), a class (5xx) or transport", a)
			}
			if n >= 200 && n < 300 {
				return r, fmt.Errorf("retry_on: %d is a success, never retried", n)
			}
			r.Statuses = append(r.Statuses, n)
		}
	}
	return r, nil
}

// ParseRetryAfter reads a Retry-After value: seconds or an HTTP date.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n > 0 {
		return time.Duration(min(n, 1<<31)) * time.Second
	}
	if t, err := time.Parse(time.RFC1123, v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// idSeq keeps ids made in one nanosecond apart.
var idSeq atomic.Uint32

// NewID returns an id that sorts by receive time: 16 hex digits of the
// time in nanoseconds, then 8 random hex digits and 4 of a sequence.
func NewID(now time.Time) string {
	var b [14]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	rand.Read(b[8:12])
	binary.BigEndian.PutUint16(b[12:], uint16(idSeq.Add(1)))
	return hex.EncodeToString(b[:])
}

// idTime is the receive time an id carries.
func idTime(id string) (time.Time, bool) {
	if len(id) < 16 {
		return time.Time{}, false
	}
	raw, err := hex.DecodeString(id[:16])
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(raw))), true
}

// validID reports whether id is one NewID could have made.
func validID(id string) bool {
	if len(id) != 28 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}
