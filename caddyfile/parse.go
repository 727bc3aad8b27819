// Package caddyfile is the Caddyfile surface of caddy-webhookauth: it
// registers the directives and their order, and parses them into the
// modules' JSON config.
package caddyfile

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"
)

// block walks the subdirectives of a directive's block and rejects any
// that appears twice unless it is marked repeatable.
type block struct {
	d          *caddyfile.Dispenser
	directive  string
	seen       map[string]bool
	repeatable map[string]bool
}

func newBlock(d *caddyfile.Dispenser, directive string, repeatable ...string) *block {
	b := &block{d: d, directive: directive, seen: map[string]bool{}, repeatable: map[string]bool{}}
	for _, r := range repeatable {
		b.repeatable[r] = true
	}
	return b
}

// next advances to the next subdirective and returns its name, or "" at
// the end of the block.
func (b *block) next(nesting int) (string, error) {
	if !b.d.NextBlock(nesting) {
		return "", nil
	}
	name := b.d.Val()
	if b.seen[name] && !b.repeatable[name] {
		return "", b.d.Errf("%s: subdirective '%s' given more than once", b.directive, name)
	}
	b.seen[name] = true
	return name, nil
}

// each calls fn with the name of every subdirective of the block, in
// order, and stops at the first error.
func (b *block) each(nesting int, fn func(sub string) error) error {
	for {
		sub, err := b.next(nesting)
		if err != nil || sub == "" {
			return err
		}
		if err := fn(sub); err != nil {
			return err
		}
	}
}

// oneArg reads exactly one argument of the current subdirective.
func (b *block) oneArg() (string, error) {
	name := b.d.Val()
	var v string
	if !b.d.AllArgs(&v) {
		return "", b.d.Errf("%s: '%s' takes exactly one argument", b.directive, name)
	}
	return v, nil
}

// choice reads one argument that must be one of the given values.
func (b *block) choice(values ...string) (string, error) {
	name := b.d.Val()
	v, err := b.oneArg()
	if err != nil {
		return "", err
	}
	for _, ok := range values {
		if v == ok {
			return v, nil
		}
	}
	return "", b.d.Errf("%s: '%s %s' is not valid (want one of %v)", b.directive, name, v, values)
}

// size reads one size argument such as 10MB or 512KiB.
func (b *block) size() (int64, error) {
	name := b.d.Val()
	v, err := b.oneArg()
	if err != nil {
		return 0, err
	}
	n, err := humanize.ParseBytes(v)
	if err != nil || n == 0 || n > 1<<40 {
		return 0, b.d.Errf("%s: '%s %s' is not a valid size (e.g. 10MB, 512KiB)", b.directive, name, v)
	}
	return int64(n), nil
}

// duration reads one duration argument; "0" is allowed.
func (b *block) duration() (time.Duration, error) {
	name := b.d.Val()
	v, err := b.oneArg()
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur < 0 {
		return 0, b.d.Errf("%s: '%s %s' is not a valid duration (e.g. 5m, 72h, 0)", b.directive, name, v)
	}
	return dur, nil
}

// unknown is the error for a subdirective the directive does not have.
func (b *block) unknown(name string) error {
	return b.d.Errf("%s: unknown subdirective '%s'", b.directive, name)
}

// errorf builds a parse error without a position; callers wrap it with
// the dispenser's Errf.
func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
