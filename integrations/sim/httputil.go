package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// maxBody bounds a request body; the largest real one (a PostNord booking or
// a Netvisor invoice with many lines) is far below.
const maxBody = 4 << 20

// errorWriter answers a failed call in one provider's error shape; status is
// 503 for ModeUnavailable and 4xx for a rejection or a bad request.
type errorWriter func(w http.ResponseWriter, r *http.Request, status int, msg string)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	return b, nil
}

// seq is a process-wide counter that makes generated ids unique.
var seq atomic.Uint64

// hash64 is a stable 64-bit hash of s.
func hash64(s string) uint64 {
	sum := sha256.Sum256([]byte(s))
	return binary.BigEndian.Uint64(sum[:8])
}

// nowUTC is the simulator's clock.
func nowUTC() time.Time { return time.Now().UTC() }
