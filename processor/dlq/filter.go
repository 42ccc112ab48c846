package dlq

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/topics"
)

// ErrBadFilter is wrapped by every Filter validation error.
var ErrBadFilter = errors.New("dlq: bad filter")

// Filter selects dead letters. Zero fields match everything; set fields must
// all match.
type Filter struct {
	Orders  []string // order keys
	Steps   []string // step names (processor.Chain)
	Classes []string // topics.Classes
	// Sources are dead letters picked one by one ("<partition>/<offset>").
	Sources []string
	// Since and Until bound FailedAt: Since inclusive, Until exclusive.
	Since, Until time.Time
}

// Empty reports whether the filter selects every dead letter.
func (f Filter) Empty() bool {
	return len(f.Orders) == 0 && len(f.Steps) == 0 && len(f.Classes) == 0 && len(f.Sources) == 0 && f.Since.IsZero() && f.Until.IsZero()
}

// Validate checks step and class names and the time range.
func (f Filter) Validate() error {
	for _, s := range f.Steps {
		if !processor.KnownStep(s) {
			return fmt.Errorf("%w: unknown step %q (want one of %s, webhook:<name>)", ErrBadFilter, s, strings.Join(processor.Chain, ", "))
		}
	}
	for _, c := range f.Classes {
		if !topics.ValidClass(c) {
			return fmt.Errorf("%w: unknown class %q (want one of %s)", ErrBadFilter, c, strings.Join(topics.Classes, ", "))
		}
	}
	for _, src := range f.Sources {
		if _, _, err := ParseSource(src); err != nil {
			return fmt.Errorf("%w: %s", ErrBadFilter, strings.TrimPrefix(err.Error(), "dlq: "))
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return fmt.Errorf("%w: --since %s is not before --until %s", ErrBadFilter, f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339))
	}
	return nil
}

// Match reports whether d is selected.
func (f Filter) Match(d DeadLetter) bool {
	if len(f.Orders) > 0 && !slices.Contains(f.Orders, d.Key) {
		return false
	}
	if len(f.Steps) > 0 && !slices.Contains(f.Steps, d.Step) {
		return false
	}
	if len(f.Classes) > 0 && !slices.Contains(f.Classes, d.Class) {
		return false
	}
	if len(f.Sources) > 0 && !slices.Contains(f.Sources, d.Source()) {
		return false
	}
	at := d.FailedAt()
	if !f.Since.IsZero() && at.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !at.Before(f.Until) {
		return false
	}
	return true
}

// ParseTime reads a --since/--until value: a duration before now ("2h",
// "90m", "3d" for days) or an RFC 3339 time. Empty gives the zero time.
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days time.Duration
		days, err = time.ParseDuration(n + "h")
		d = days * 24
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%w: time %q: want a duration before now (2h, 30m, 7d) or an RFC 3339 time (2026-01-02T15:04:05Z)", ErrBadFilter, s)
	}
	return now.Add(-d), nil
}
