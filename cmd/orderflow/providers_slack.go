package main

import (
	"flag"
	"strings"

	"github.com/orderflow/orderflow/integrations/slack"
)

// Slack is an alert channel beside Telegram: batched messages to a
// channel's incoming webhook. Optional: without a webhook URL it is off,
// also with --sim-url (give the simulator's /services/… URL to use it).
// The URL is the credential, so it comes from a file or the environment,
// never from a flag holding it.

const envSlackWebhookURL = "ORDERFLOW_SLACK_WEBHOOK_URL"

func init() { registerProvider(func() provider { return &slackProvider{} }) }

type slackProvider struct {
	urlFile string
}

func (*slackProvider) name() string { return "slack" }
func (*slackProvider) step() string { return "" }

func (p *slackProvider) register(fs *flag.FlagSet) {
	fs.StringVar(&p.urlFile, "slack-webhook-url-file", "", "file holding the Slack incoming-webhook URL (or set "+envSlackWebhookURL+"); alerts then also go to that channel, batched, at most one message a second")
}

func (p *slackProvider) configure(s *setup) any {
	if strings.Contains(p.urlFile, "://") {
		// Someone passed the URL itself: say so without echoing it.
		s.fail(usagef("--slack-webhook-url-file takes the path of a file holding the webhook URL, not the URL (it is a secret: keep it in a file or %s)", envSlackWebhookURL))
		return nil
	}
	u, ok := s.optional(p.urlFile, envSlackWebhookURL, "slack-webhook-url-file")
	if u = strings.TrimSpace(u); !ok || u == "" {
		return nil
	}
	return &slack.Config{WebhookURL: u, Logger: s.logger()}
}

func (p *slackProvider) build(cfg any, b *builder) error {
	sl, err := slack.New(*cfg.(*slack.Config))
	if err != nil {
		return err
	}
	b.alerter("slack", sl)
	b.onClose(func() {
		if err := sl.Close(); err != nil {
			b.log.Warn("slack: alerts not sent before stopping", "err", err)
		}
	})
	return nil
}
