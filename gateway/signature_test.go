package gateway

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

func TestVerify(t *testing.T) {
	payload := []byte(`{"id":"evt_1","object":"event"}`)
	now := time.Unix(1_701_475_200, 0)
	sig := func(secret string, ts time.Time) string {
		return hex.EncodeToString(webhook.ComputeSignature(ts, payload, secret))
	}
	good := sig(testSecret, now)
	tests := []struct {
		name   string
		header string
		want   error
	}{
		{"valid", "t=1701475200,v1=" + good, nil},
		{"valid with v0 and unknown schemes", "t=1701475200,v0=abc,v1=" + good + ",v9=zz", nil},
		{"second v1 matches", "t=1701475200,v1=" + sig("whsec_other", now) + ",v1=" + good, nil},
		{"v1 not hex is skipped", "t=1701475200,v1=xyz,v1=" + good, nil},
		{"timestamp after signatures", "v1=" + good + ",t=1701475200", nil},
		{"at the tolerance edge", "t=1701474900,v1=" + sig(testSecret, now.Add(-300*time.Second)), nil},
		{"empty", "", webhook.ErrNotSigned},
		{"pair without =", "t=1701475200,v1", webhook.ErrInvalidHeader},
		{"pair with two =", "t=1701475200,v1=" + good + "=", webhook.ErrInvalidHeader},
		{"bad timestamp", "t=now,v1=" + good, webhook.ErrInvalidHeader},
		{"no timestamp", "v1=" + good, webhook.ErrInvalidHeader},
		{"v0 only", "t=1701475200,v0=" + good, webhook.ErrNoValidSignature},
		{"only bad hex", "t=1701475200,v1=nothex", webhook.ErrNoValidSignature},
		{"signature of another payload", "t=1701475200,v1=" + hex.EncodeToString(webhook.ComputeSignature(now, []byte("{}"), testSecret)), webhook.ErrNoValidSignature},
		{"signature over another timestamp", "t=1701475201,v1=" + good, webhook.ErrNoValidSignature},
		{"too old", "t=1701474899,v1=" + sig(testSecret, now.Add(-301*time.Second)), webhook.ErrTooOld},
		{"too new", "t=1701475501,v1=" + sig(testSecret, now.Add(301*time.Second)), webhook.ErrTooOld},
	}
	v := newVerifier([]string{testSecret}, DefaultTolerance)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := v.verify(payload, tt.header, now); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("verify = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestVerifyAgreesWithStripe checks that, for timestamps not in the future
// and headers with a timestamp, the verifier gives exactly stripe-go's
// answer.
func TestVerifyAgreesWithStripe(t *testing.T) {
	payload := []byte(`{"id":"evt_2","object":"event","type":"charge.refunded"}`)
	now := time.Now()
	headers := []string{
		sign(payload, testSecret, now),
		sign(payload, testSecret, now.Add(-299*time.Second)),
		sign(payload, testSecret, now.Add(-time.Hour)),
		sign(payload, "whsec_nope", now),
		sign(append([]byte{' '}, payload...), testSecret, now),
		strings.Replace(sign(payload, testSecret, now), "v1=", "v0=", 1),
		"t=12,v1=",
		"t=,v1=00",
		"t=1,v1=00,,",
		"t=1,v1=ABCD",
		"t=1,v1=abc",
		"t=1,v1=" + strings.Repeat("a", 64),
		"",
	}
	v := newVerifier([]string{testSecret}, DefaultTolerance)
	for _, h := range headers {
		want := webhook.ValidatePayloadWithTolerance(payload, h, testSecret, DefaultTolerance)
		got := v.verify(payload, h, time.Now())
		if !errors.Is(got, want) && !(got == nil && want == nil) {
			t.Errorf("header %q: got %v, stripe-go says %v", h, got, want)
		}
	}
}
