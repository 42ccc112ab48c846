package zoho

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// The daily-credit refusal and the concurrency refusal both come as HTTP
// 429 TOO_MANY_REQUESTS; only the first holds the step until a reset.
func TestCreditsExhaustedToldFromConcurrency(t *testing.T) {
	const concurrency = `{"code":"TOO_MANY_REQUESTS","details":{"allowed_limit":"10"},"message":"concurrency limit exceeded","status":"error"}`
	noon := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		reply   func(t *testing.T) reply
		recheck time.Duration
		quota   bool
		reset   time.Time     // with quota
		retry   time.Duration // without quota: the Retry-After kept
	}{
		{"credits: details with the 24 h window and retry_after", func(t *testing.T) reply {
			return reply{status: 429, body: fixture(t, "error_credits_exhausted.json")}
		}, 0, true, time.Date(2026, 11, 28, 13, 30, 0, 0, time.UTC), 0},
		{"credits: X-API-CREDITS-REMAINING 0, nothing says when: the recheck default of 1 h", func(t *testing.T) reply {
			return reply{status: 429, body: `{"code":"TOO_MANY_REQUESTS","details":{},"message":"Too many requests","status":"error"}`,
				headers: map[string]string{"X-API-CREDITS-REMAINING": "0"}}
		}, 0, true, time.Date(2026, 11, 28, 13, 0, 0, 0, time.UTC), 0},
		{"credits: message about credits, Retry-After gives the reset", func(t *testing.T) reply {
			return reply{status: 429, body: `{"code":"TOO_MANY_REQUESTS","details":{},"message":"You have exhausted the API credits","status":"error"}`,
				headers: map[string]string{"Retry-After": "600"}}
		}, 0, true, time.Date(2026, 11, 28, 12, 10, 0, 0, time.UTC), 0},
		{"credits: configured recheck", func(t *testing.T) reply {
			return reply{status: 429, body: `{"code":"TOO_MANY_REQUESTS","details":{},"message":"x","status":"error"}`,
				headers: map[string]string{"X-API-CREDITS-REMAINING": "0"}}
		}, 20 * time.Minute, true, time.Date(2026, 11, 28, 12, 20, 0, 0, time.UTC), 0},
		{"concurrency: transient with Retry-After", func(t *testing.T) reply {
			return reply{status: 429, body: concurrency, headers: map[string]string{"Retry-After": "12"}}
		}, 0, false, time.Time{}, 12 * time.Second},
		{"concurrency with credits left in the header", func(t *testing.T) reply {
			return reply{status: 429, body: concurrency, headers: map[string]string{"X-API-CREDITS-REMAINING": "48211"}}
		}, 0, false, time.Time{}, 0},
		{"a short rate window is not the daily quota", func(t *testing.T) reply {
			return reply{status: 429, body: `{"code":"TOO_MANY_REQUESTS","message":"Rate limit exceeded. Please retry after the specified time.","status":"error","details":{"retry_after":60,"limit":100,"window":60}}`}
		}, 0, false, time.Time{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeZoho{}
			f.crm = func(string, string) reply { return tt.reply(t) }
			c, _, _ := newTest(t, f, func(c *Config) { c.QuotaRecheck = tt.recheck })
			c.now = func() time.Time { return noon }
			_, err := c.UpsertContactAndDeal(context.Background(), testOrder())
			var e *integrations.Error
			if !errors.As(err, &e) || e.Class != integrations.Transient || e.Status != 429 {
				t.Fatalf("err = %v, want a transient 429", err)
			}
			reset, quota := integrations.QuotaResetOf(err)
			if quota != tt.quota {
				t.Fatalf("quota exhausted = %v, want %v (err %v)", quota, tt.quota, err)
			}
			if quota && !reset.Equal(tt.reset) {
				t.Errorf("reset = %v, want %v", reset, tt.reset)
			}
			if !quota && e.RetryAfter != tt.retry {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.retry)
			}
			if n := len(f.crmRequests()); n != 1 {
				t.Errorf("%d CRM requests, want 1 (no retry inside the client)", n)
			}
		})
	}
}
