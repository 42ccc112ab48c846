package processor

import (
	"context"
	"encoding/json"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/webhook"
)

// WebhookStep returns an outbound webhook step named "webhook:<name>" that
// posts the order and the results of the steps it reads, signed per the
// Standard Webhooks specification (integrations/webhook). It reads the
// steps given, normally every step before it in the chain; no built-in
// step reads it, so it never delays them (unless it is a gate,
// WebhookGateStep). The call is idempotent: every
// attempt carries the same webhook-id (stable per webhook and order), on
// which the receiver deduplicates. 2xx is done, 408, 429 and 5xx are
// retried (honouring Retry-After), any other answer dead-letters.
func WebhookStep(c *webhook.Client, reads []string) Step {
	return webhookStep{c: c, reads: append([]string(nil), reads...)}
}

// WebhookGateStep is WebhookStep marked as a gate (Gate): every step listed
// after it waits until its receiver answered 2xx, e.g. a warehouse system
// that must accept the order before shipping. A receiver refusing it for
// good dead-letters the order with the later steps pending; a replay sends
// it again and then runs them.
func WebhookGateStep(c *webhook.Client, reads []string) Step {
	return webhookStep{c: c, reads: append([]string(nil), reads...), gate: true}
}

type webhookStep struct {
	c     *webhook.Client
	reads []string
	gate  bool
}

func (s webhookStep) Gate() bool { return s.gate }

func (s webhookStep) Name() string    { return integrations.WebhookStepPrefix + s.c.Name() }
func (webhookStep) Idempotent() bool  { return true }
func (s webhookStep) Reads() []string { return s.reads }
func (s webhookStep) Run(ctx context.Context, in Input) (any, error) {
	all := in.Results()
	sent := make(map[string]json.RawMessage, len(s.reads))
	for _, r := range s.reads {
		if b, ok := all[r]; ok {
			sent[r] = b
		}
	}
	return s.c.Deliver(ctx, in.Order, sent)
}
