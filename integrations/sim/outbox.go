package sim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// outbox keeps what the simulated providers "sent": one folder per step with
// the objects a person would open (label PDFs, invoice XML, emails, alert
// texts) and <step>.jsonl with one line per side-effecting request.
//
// The JSON lines go through one buffered writer per step, flushed every
// flushEvery and on close, so at thousands of requests per second the disk
// sees a few large writes. Per-object files are written directly, at most
// maxFiles per step; past that only the JSON lines grow.
type outbox struct {
	dir      string // DataDir/outbox; "" = disabled
	maxFiles int
	log      *slog.Logger

	mu     sync.Mutex
	lines  map[string]*jsonlFile
	files  map[string]int
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

type jsonlFile struct {
	f *os.File
	w *bufio.Writer
}

const flushEvery = time.Second

// entry is one JSON line of <step>.jsonl.
type entry struct {
	Time      time.Time `json:"time"`
	Step      string    `json:"step"`
	Order     string    `json:"order,omitempty"` // the order key the provider saw
	Kind      string    `json:"kind"`            // contact, deal, row, shipment, invoice, message, alert
	ID        string    `json:"id"`              // the provider's id of the object
	Action    string    `json:"action"`          // create or update
	Duplicate bool      `json:"duplicate,omitempty"`
	File      string    `json:"file,omitempty"` // relative to the outbox root
}

func newOutbox(dataDir string, maxFiles int, log *slog.Logger) (*outbox, error) {
	ob := &outbox{maxFiles: maxFiles, log: log, lines: map[string]*jsonlFile{}, files: map[string]int{}}
	if dataDir == "" {
		return ob, nil
	}
	ob.dir = filepath.Join(dataDir, "outbox")
	for _, s := range Steps {
		if s == StepStripe {
			continue
		}
		if err := os.MkdirAll(filepath.Join(ob.dir, s), 0o755); err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
	}
	ob.stop, ob.done = make(chan struct{}), make(chan struct{})
	go ob.flusher()
	return ob, nil
}

func (ob *outbox) flusher() {
	defer close(ob.done)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ob.stop:
			return
		case <-t.C:
			ob.mu.Lock()
			for step, jf := range ob.lines {
				if err := jf.w.Flush(); err != nil {
					ob.log.Error("sim outbox flush", "step", step, "err", err)
				}
			}
			ob.mu.Unlock()
		}
	}
}

// record appends e to <step>.jsonl.
func (ob *outbox) record(e entry) {
	if ob.dir == "" {
		return
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	b = append(b, '\n')
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.closed {
		return
	}
	jf, ok := ob.lines[e.Step]
	if !ok {
		f, err := os.OpenFile(filepath.Join(ob.dir, e.Step+".jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			ob.log.Error("sim outbox open", "step", e.Step, "err", err)
			return
		}
		jf = &jsonlFile{f: f, w: bufio.NewWriterSize(f, 64<<10)}
		ob.lines[e.Step] = jf
	}
	if _, err := jf.w.Write(b); err != nil {
		ob.log.Error("sim outbox write", "step", e.Step, "err", err)
	}
}

// write stores one object as <step>/<name> and returns its path relative to
// the outbox root, or "" when the outbox is off, full for the step, or the
// write failed.
func (ob *outbox) write(step, name string, data []byte) string {
	if ob.dir == "" || ob.maxFiles < 0 {
		return ""
	}
	ob.mu.Lock()
	if ob.closed || ob.files[step] >= ob.maxFiles {
		ob.mu.Unlock()
		return ""
	}
	ob.files[step]++
	ob.mu.Unlock()
	rel := filepath.Join(step, safeName(name))
	if err := os.WriteFile(filepath.Join(ob.dir, rel), data, 0o644); err != nil {
		ob.log.Error("sim outbox write", "step", step, "err", err)
		return ""
	}
	return filepath.ToSlash(rel)
}

func (ob *outbox) close() error {
	if ob.dir == "" {
		return nil
	}
	ob.mu.Lock()
	if ob.closed {
		ob.mu.Unlock()
		return nil
	}
	ob.closed = true
	ob.mu.Unlock()
	close(ob.stop)
	<-ob.done
	ob.mu.Lock()
	defer ob.mu.Unlock()
	var first error
	for _, jf := range ob.lines {
		if err := jf.w.Flush(); err != nil && first == nil {
			first = err
		}
		if err := jf.f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// safeName keeps letters, digits, '-', '_' and '.' of a file name, so an id
// from a request cannot leave the step's folder.
func safeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := strings.TrimLeft(b.String(), ".")
	if len(out) > 120 {
		out = out[len(out)-120:]
	}
	if out == "" {
		out = "_"
	}
	return out
}
