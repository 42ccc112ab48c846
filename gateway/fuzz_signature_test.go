package gateway

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// FuzzVerifySignature checks the Stripe-Signature parser and verifier
// against stripe-go's own on arbitrary headers, payloads and timestamps,
// including headers built around a valid signature and then mangled:
//
//   - it never panics and only returns the documented sentinel errors;
//   - it accepts a request only when stripe-go accepts the signature for one
//     of the secrets and the (last) timestamp is within the tolerance of now,
//     in either direction;
//   - it accepts every request stripe-go accepts with a timestamp within the
//     tolerance, except where it is deliberately stricter: a header without
//     `t=`, or a valid signature beyond the first maxSignatures v1 values;
//   - a header stripe-go cannot parse is rejected with the same error.
func FuzzVerifySignature(f *testing.F) {
	payload := []byte(`{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}`)
	for _, s := range []struct {
		header string
		offset int64
		mode   uint8
	}{
		{"", 0, modeSigned},
		{"", -299, modeSigned},
		{"", -301, modeSigned},
		{"", 301, modeSigned},
		{"", 0, modeSigned | modeOtherSecret},
		{"v0=abcd", 0, modeSignedThenExtra},
		{"t=1", 0, modeSignedThenExtra},
		{"t=1", 0, modeExtraThenSigned},
		{"v1=", 0, modeExtraThenSigned},
		{"t=1800000000,v1=" + strings.Repeat("0", 64), 0, modeRaw},
		{"t=1800000000,v0=" + strings.Repeat("a", 64), 0, modeRaw},
		{"t=x,v1=00", 0, modeRaw},
		{"t=1800000000,t=1800000000,v1=00", 0, modeRaw},
		{"t=1800000000,v1=0=0", 0, modeRaw},
		{"t=1800000000,,v1=00", 0, modeRaw},
		{"v1=" + strings.Repeat("ab", 32), 0, modeRaw},
		{" t=1800000000, v1=00", 0, modeRaw},
		{"t=-9223372036854775808,v1=00", 0, modeRaw},
		{"t=9223372036854775807,v1=00", 0, modeRaw},
		{strings.Repeat("v1="+strings.Repeat("cd", 32)+",", 9), 0, modeExtraThenSigned},
		{"", 0, modeRaw},
	} {
		f.Add(payload, s.header, s.offset, s.mode)
	}
	f.Add([]byte{}, "", int64(0), modeSigned)
	f.Add([]byte("\x00\xff"), "", int64(0), modeSigned|modeOtherSecret)

	secrets := []string{testSecret, otherSecret}
	v := newVerifier(secrets, DefaultTolerance)
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, payload []byte, extra string, offset int64, mode uint8) {
		secret := testSecret
		if mode&modeOtherSecret != 0 {
			secret = otherSecret
		}
		signed := func() string { return sign(payload, secret, time.Unix(now.Unix()+offset, 0)) }
		var header string
		switch mode & 3 {
		case modeRaw:
			header = extra
		case modeSigned:
			header = signed()
		case modeSignedThenExtra:
			header = signed() + "," + extra
		case modeExtraThenSigned:
			header = extra + "," + signed()
		}

		got := v.verify(payload, header, now)
		switch {
		case got == nil,
			errors.Is(got, webhook.ErrNotSigned),
			errors.Is(got, webhook.ErrInvalidHeader),
			errors.Is(got, webhook.ErrNoValidSignature),
			errors.Is(got, webhook.ErrTooOld):
		default:
			t.Fatalf("header %q: undocumented error %v", header, got)
		}

		// stripe-go's verdict without its (past-only) tolerance check.
		var stripeErr error
		for _, s := range secrets {
			if stripeErr = webhook.ValidatePayloadIgnoringTolerance(payload, header, s); stripeErr == nil {
				break
			}
		}
		if errors.Is(stripeErr, webhook.ErrNotSigned) || errors.Is(stripeErr, webhook.ErrInvalidHeader) {
			if !errors.Is(got, stripeErr) {
				t.Fatalf("header %q: got %v, stripe-go cannot parse it (%v)", header, got, stripeErr)
			}
			return
		}
		ts, hasTS, sigs := inspectHeader(header)
		fresh := false
		if hasTS {
			d := now.Sub(time.Unix(ts, 0))
			fresh = d <= DefaultTolerance && d >= -DefaultTolerance
		}
		if got == nil && (stripeErr != nil || !fresh) {
			t.Fatalf("header %q accepted; stripe-go says %v, timestamp fresh: %v", header, stripeErr, fresh)
		}
		if got != nil && stripeErr == nil && hasTS && fresh && sigs <= maxSignatures {
			t.Fatalf("header %q rejected with %v; stripe-go accepts it and the timestamp is fresh", header, got)
		}
		if got == nil && !strings.Contains(header, "v1=") {
			t.Fatalf("header %q without a v1 signature accepted", header)
		}
	})
}

// Ways FuzzVerifySignature builds its header (low two bits), and a flag to
// sign with the second secret.
const (
	modeRaw             uint8 = 0 // the fuzzed string alone
	modeSigned          uint8 = 1 // a valid header for the payload
	modeSignedThenExtra uint8 = 2 // valid header, comma, fuzzed string
	modeExtraThenSigned uint8 = 3 // fuzzed string, comma, valid header
	modeOtherSecret     uint8 = 4
)

// inspectHeader reads what a header stripe-go can parse carries: its last
// `t=` value and how many v1 values are 32-byte hex signatures.
func inspectHeader(header string) (ts int64, hasTS bool, sigs int) {
	for pair := range strings.SplitSeq(header, ",") {
		k, val, _ := strings.Cut(pair, "=")
		switch k {
		case "t":
			if n, err := strconv.ParseInt(val, 10, 64); err == nil {
				ts, hasTS = n, true
			}
		case "v1":
			if len(val) == 64 && isHex(val) {
				sigs++
			}
		}
	}
	return ts, hasTS, sigs
}
