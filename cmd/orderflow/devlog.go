package main

import (
	"context"
	"log/slog"
)

// minLevelHandler passes on records at or above min only.
type minLevelHandler struct {
	slog.Handler
	min slog.Level
}

func (h minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevelHandler{h.Handler.WithAttrs(as), h.min}
}

func (h minLevelHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{h.Handler.WithGroup(name), h.min}
}

// devQuiet is the logger of a dev-mode part that logs once per request or
// provider call (the gateway's "webhook answered", each provider client's
// success): at --log-level info it passes warnings and errors only, so a
// person sees one line per order (the processor's outcome) plus what went
// wrong; at debug it passes everything.
func devQuiet(l *slog.Logger) *slog.Logger {
	if l.Enabled(context.Background(), slog.LevelDebug) {
		return l
	}
	return slog.New(minLevelHandler{l.Handler(), slog.LevelWarn})
}
