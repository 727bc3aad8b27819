// Package cfparse holds the Caddyfile parsing helpers the modules share
// in their UnmarshalCaddyfile methods: walking a block (with repeated
// subdirectives refused), and reading one argument, a choice, a size or a
// duration with errors that name the directive and the subdirective.
package cfparse

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"
)

// Block walks the subdirectives of a directive's block and rejects any
// that appears twice unless it is marked repeatable.
type Block struct {
	D         *caddyfile.Dispenser
	Directive string
	// Known are the directive's subdirectives, for the suggestion an
	// unknown one gets ("did you mean dedup_scope?").
	Known      []string
	seen       map[string]bool
	repeatable map[string]bool
}

// NewBlock starts walking the block of directive; the named subdirectives
// may appear more than once.
func NewBlock(d *caddyfile.Dispenser, directive string, repeatable ...string) *Block {
	b := &Block{D: d, Directive: directive, seen: map[string]bool{}, repeatable: map[string]bool{}}
	for _, r := range repeatable {
		b.repeatable[r] = true
	}
	return b
}

// next advances to the next subdirective and returns its name, or "" at
// the end of the block.
func (b *Block) next(nesting int) (string, error) {
	if !b.D.NextBlock(nesting) {
		return "", nil
	}
	name := b.D.Val()
	if b.seen[name] && !b.repeatable[name] {
		return "", b.D.Errf("%s: subdirective '%s' given more than once", b.Directive, name)
	}
	b.seen[name] = true
	return name, nil
}

// Each calls fn with the name of every subdirective of the block, in
// order, and stops at the first error.
func (b *Block) Each(nesting int, fn func(sub string) error) error {
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

// OneArg reads exactly one argument of the current subdirective.
func (b *Block) OneArg() (string, error) {
	name := b.D.Val()
	var v string
	if !b.D.AllArgs(&v) {
		return "", b.D.Errf("%s: '%s' takes exactly one argument", b.Directive, name)
	}
	return v, nil
}

// Choice reads one argument that must be one of the given values.
func (b *Block) Choice(values ...string) (string, error) {
	name := b.D.Val()
	v, err := b.OneArg()
	if err != nil {
		return "", err
	}
	for _, ok := range values {
		if v == ok {
			return v, nil
		}
	}
	return "", b.D.Errf("%s: '%s %s' is not valid (want one of %v)", b.Directive, name, v, values)
}

// Size reads one size argument such as 10MB or 512KiB.
func (b *Block) Size() (int64, error) {
	name := b.D.Val()
	v, err := b.OneArg()
	if err != nil {
		return 0, err
	}
	n, err := humanize.ParseBytes(v)
	if err != nil || n == 0 || n > 1<<40 {
		return 0, b.D.Errf("%s: '%s %s' is not a valid size (e.g. 10MB, 512KiB)", b.Directive, name, v)
	}
	return int64(n), nil
}

// Duration reads one duration argument; "0" is allowed.
func (b *Block) Duration() (time.Duration, error) {
	name := b.D.Val()
	v, err := b.OneArg()
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur < 0 {
		return 0, b.D.Errf("%s: '%s %s' is not a valid duration (e.g. 5m, 72h, 0)", b.Directive, name, v)
	}
	return dur, nil
}

// Unknown is the error for a subdirective the directive does not have,
// with the nearest known names when one is close (a typo).
func (b *Block) Unknown(name string) error {
	if near := Nearest(name, b.Known, 2); len(near) > 0 {
		return b.D.Errf("%s: unknown subdirective '%s'; did you mean %s?", b.Directive, name, strings.Join(near, " or "))
	}
	if len(b.Known) > 0 {
		return b.D.Errf("%s: unknown subdirective '%s' (it takes %s)", b.Directive, name, strings.Join(b.Known, ", "))
	}
	return b.D.Errf("%s: unknown subdirective '%s'", b.Directive, name)
}

// Nearest returns the names within limit edits of name (or that it
// starts, from four letters), the closest ones only, at most three.
func Nearest(name string, names []string, limit int) []string {
	best := limit + 1
	var out []string
	for _, n := range names {
		d := EditDistance(name, n)
		if len(name) >= 4 && strings.HasPrefix(n, name) {
			d = min(d, 1)
		}
		switch {
		case d < best:
			best, out = d, []string{n}
		case d == best && len(out) < 3:
			out = append(out, n)
		}
	}
	if best > limit {
		return nil
	}
	return out
}

// EditDistance is the Levenshtein distance between a and b (bytes).
func EditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ParseRate reads <events>/<window> (60/1m; 10/s reads as 10/1s).
func ParseRate(v string) (int64, time.Duration, error) {
	evs, win, ok := strings.Cut(v, "/")
	if !ok {
		return 0, 0, fmt.Errorf("rate %q must be <events>/<window>, e.g. 60/1m", v)
	}
	events, err := strconv.ParseInt(evs, 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("rate %q: %q is not a whole number of events", v, evs)
	}
	if events < 1 {
		return 0, 0, fmt.Errorf("rate %q: the number of events must be at least 1", v)
	}
	if win != "" && strings.Trim(win, "smhdµun") == "" {
		win = "1" + win // "10/m" reads as "10/1m"
	}
	window, err := caddy.ParseDuration(win)
	if err != nil {
		return 0, 0, fmt.Errorf("rate %q: %q is not a duration", v, win)
	}
	if window <= 0 {
		return 0, 0, fmt.Errorf("rate %q: the window must be longer than 0", v)
	}
	return events, window, nil
}
