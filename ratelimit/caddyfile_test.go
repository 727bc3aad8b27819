package ratelimit

import (
	"testing"
	"time"
)

// FuzzParseRate: any accepted rate is a valid, enforceable limit.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"60/1m", "7/1s", "1/1h", "10/m", "0/1m", "10/0s", "ten/1m", "-1/1m", "10/-1m", "1/1µs", "99999999999999999999/1s", "/", "1/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		events, window, err := parseRate(v)
		if err != nil {
			return
		}
		if events < 1 || window <= 0 || window/time.Duration(events) < time.Microsecond {
			t.Fatalf("%q accepted as %d/%v", v, events, window)
		}
	})
}
