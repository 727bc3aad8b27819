// Package ratelimit is the webhook_rate_limit handler: GCRA rate limiting
// that runs before any hashing, with state in an embedded sharded map or a
// shared store.
package ratelimit

import (
	"fmt"
	"time"
)

// Limit is a rate policy: Rate events per Window, of which Burst may come
// at once.
//
// It is enforced with the generic cell rate algorithm (GCRA): each key has
// one number, its theoretical arrival time (TAT). Every admitted event
// pushes the TAT one emission interval (Window/Rate, rounded up to the
// nanosecond so the rate is never exceeded) into the future; an event is
// admitted while the TAT stays within Burst intervals of now. There is
// nothing to refill and no timer: state is a pure function of the stored
// TAT and the current time, and a key whose TAT is in the past is
// indistinguishable from a key never seen.
type Limit struct {
	Rate   int64
	Window time.Duration
	// Burst is how many events may arrive at once from idle; by default
	// (0), Rate.
	Burst int64
}

// Validate reports a limit that cannot be enforced.
func (l Limit) Validate() error {
	switch {
	case l.Rate <= 0:
		return fmt.Errorf("rate must be at least 1 event per window")
	case l.Window <= 0:
		return fmt.Errorf("the rate's window must be longer than 0")
	case l.Burst < 0:
		return fmt.Errorf("burst must not be negative")
	case l.Window/time.Duration(l.Rate) < time.Microsecond:
		return fmt.Errorf("rate %d/%s is more than one event per microsecond", l.Rate, l.Window)
	}
	return nil
}

// Interval is the emission interval: the time one event costs.
func (l Limit) Interval() time.Duration {
	return (l.Window + time.Duration(l.Rate) - 1) / time.Duration(l.Rate)
}

// burst is the effective burst.
func (l Limit) burst() int64 {
	if l.Burst > 0 {
		return l.Burst
	}
	return l.Rate
}

// Decision is the outcome of one event.
type Decision struct {
	Allowed bool
	// Remaining is how many more events would be admitted right now.
	Remaining int64
	// RetryAfter is, for a denied event, how long until one would be
	// admitted.
	RetryAfter time.Duration
	// ResetAfter is how long until the key is fully drained (back to a
	// full burst).
	ResetAfter time.Duration
}

// Decide is the algorithm: given the stored TAT (0 for an unknown key)
// and now, both in nanoseconds on the same clock, it returns the TAT to
// store and the decision. It is pure; stores call it under their own
// locking, or run the same arithmetic elsewhere (the Redis script).
func (l Limit) Decide(tat, now int64) (int64, Decision) {
	interval := int64(l.Interval())
	tolerance := interval * l.burst()
	if tat < now {
		tat = now
	}
	next := tat + interval
	allowAt := next - tolerance
	if now < allowAt {
		return tat, Decision{
			RetryAfter: time.Duration(allowAt - now),
			ResetAfter: time.Duration(tat - now),
		}
	}
	return next, Decision{
		Allowed:    true,
		Remaining:  (now + tolerance - next) / interval,
		ResetAfter: time.Duration(next - now),
	}
}
