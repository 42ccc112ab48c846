package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// verifier checks Stripe-Signature headers against a set of secrets. It
// mirrors stripe-go v76's webhook.ValidatePayloadWithTolerance and returns
// the same sentinel errors (webhook.ErrNotSigned, ErrInvalidHeader,
// ErrNoValidSignature, ErrTooOld), with three deliberate differences: it
// tries every secret after parsing the header once, a header without `t=`
// is invalid rather than too old, and a timestamp too far in the future is
// rejected like one too far in the past (a signed request replayed from a
// clock ahead of ours is no fresher than one from behind).
type verifier struct {
	tolerance time.Duration
	macs      []*sync.Pool // one pool of HMAC-SHA256 states per secret
}

func newVerifier(secrets []string, tolerance time.Duration) *verifier {
	v := &verifier{tolerance: tolerance}
	for _, s := range secrets {
		key := []byte(s)
		v.macs = append(v.macs, &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }})
	}
	return v
}

// maxSignatures bounds the v1 signatures considered in one header; Stripe
// sends one per active secret of the endpoint (two while rolling).
const maxSignatures = 8

// verify returns nil when header carries a v1 signature of payload by one of
// the secrets, made within the tolerance of now.
func (v *verifier) verify(payload []byte, header string, now time.Time) error {
	if header == "" {
		return webhook.ErrNotSigned
	}
	var (
		sec     int64
		tsSeen  bool
		sigs    [maxSignatures][sha256.Size]byte
		n       int
		hexSeen bool // any v1 value that is hex
	)
	for pair := range strings.SplitSeq(header, ",") {
		k, val, ok := strings.Cut(pair, "=")
		if !ok || strings.Contains(val, "=") {
			return webhook.ErrInvalidHeader
		}
		switch k {
		case "t":
			t, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return webhook.ErrInvalidHeader
			}
			sec, tsSeen = t, true
		case "v1":
			// Like stripe-go, skip values that are not hex instead of
			// failing the header. Hex of another length counts as a
			// signature that cannot match.
			if len(val) == 2*sha256.Size && n < maxSignatures {
				if _, err := hex.Decode(sigs[n][:], []byte(val)); err == nil {
					n++
					hexSeen = true
				}
			} else if len(val)%2 == 0 && isHex(val) {
				hexSeen = true
			}
		default:
			// Other schemes (v0 is a test-mode signature) are ignored so a
			// downgrade to them cannot pass.
		}
	}
	if !tsSeen {
		return webhook.ErrInvalidHeader
	}
	if !hexSeen {
		return webhook.ErrNoValidSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > v.tolerance || d < -v.tolerance {
		return webhook.ErrTooOld
	}
	// The signed payload is "<unix seconds>.<raw body>", the seconds
	// formatted as stripe-go's ComputeSignature does.
	var tsBuf [24]byte
	prefix := append(strconv.AppendInt(tsBuf[:0], sec, 10), '.')
	var sum [sha256.Size]byte
	for _, pool := range v.macs {
		mac := pool.Get().(hash.Hash)
		mac.Reset()
		mac.Write(prefix)
		mac.Write(payload)
		mac.Sum(sum[:0])
		pool.Put(mac)
		for i := range n {
			if hmac.Equal(sum[:], sigs[i][:]) {
				return nil
			}
		}
	}
	return webhook.ErrNoValidSignature
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}
