package gate

import (
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// DefaultLogsPerSecond is how many lines per second a handler writes for
// one kind of event before it starts counting instead.
const DefaultLogsPerSecond = 10

// LogSampler keeps a flood of bad requests from flooding the log: in each
// second it lets the first lines through and counts the rest, and the
// next line it lets through carries the count of lines suppressed since
// the previous one. The zero value allows DefaultLogsPerSecond. It is
// safe for concurrent use.
type LogSampler struct {
	// PerSecond is the number of lines allowed per second; 0 means
	// DefaultLogsPerSecond.
	PerSecond int

	mu         sync.Mutex
	second     int64
	n          int
	suppressed int64
}

// Allow reports whether a line may be written at now and, if so, how many
// lines were suppressed since the last one written.
func (s *LogSampler) Allow(now time.Time) (ok bool, suppressed int64) {
	limit := s.PerSecond
	if limit <= 0 {
		limit = DefaultLogsPerSecond
	}
	sec := now.Unix()
	s.mu.Lock()
	defer s.mu.Unlock()
	if sec != s.second {
		s.second, s.n = sec, 0
	}
	if s.n >= limit {
		s.suppressed++
		return false, 0
	}
	s.n++
	suppressed, s.suppressed = s.suppressed, 0
	return true, suppressed
}

// Check is logger.Check, sampled: it returns nil when the level is off or
// the line is suppressed, and otherwise the entry and the "suppressed"
// field to write with it.
func (s *LogSampler) Check(logger *zap.Logger, level zapcore.Level, msg string, now time.Time) (*zapcore.CheckedEntry, zap.Field) {
	ce := logger.Check(level, msg)
	if ce == nil {
		return nil, zap.Field{}
	}
	ok, suppressed := s.Allow(now)
	if !ok {
		return nil, zap.Field{}
	}
	return ce, zap.Int64("suppressed", suppressed)
}
