package webhookauth

import (
	"strconv"
	"time"
)

// parseTimestamp reads a timestamp written in format f. Unix forms take
// only ASCII digits (no sign, no spaces, no fraction) and at most 18 of
// them, so every accepted value fits an int64 without overflow.
func parseTimestamp(f TimestampFormat, v string) (time.Time, bool) {
	switch f {
	case TimestampUnix, TimestampUnixMS:
		if len(v) == 0 || len(v) > 18 {
			return time.Time{}, false
		}
		var n int64
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c < '0' || c > '9' {
				return time.Time{}, false
			}
			n = n*10 + int64(c-'0')
		}
		if f == TimestampUnixMS {
			return time.UnixMilli(n), true
		}
		return time.Unix(n, 0), true
	case TimestampRFC3339:
		t, err := time.Parse(time.RFC3339, v)
		return t, err == nil
	case TimestampISO8601:
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return t, true
		}
		t, err := time.Parse("2006-01-02T15:04:05", v) // fraction accepted; UTC
		return t, err == nil
	}
	return time.Time{}, false
}

// formatTimestamp writes t in format f, as a sender would.
func formatTimestamp(f TimestampFormat, t time.Time) string {
	switch f {
	case TimestampUnixMS:
		return strconv.FormatInt(t.UnixMilli(), 10)
	case TimestampRFC3339:
		return t.UTC().Format(time.RFC3339)
	case TimestampISO8601:
		return t.UTC().Format("2006-01-02T15:04:05.000000")
	}
	return strconv.FormatInt(t.Unix(), 10)
}
