package main

import (
	"flag"

	"github.com/orderflow/orderflow/integrations/telegram"
)

// Telegram is an alert channel: batched messages from a bot to a chat.
// Optional: without a token alerts go to the other channels or the log.

const (
	simTelegramToken = "123456:ORDERFLOW-simulator"
	simTelegramChat  = "-1001000000000"

	envTelegramToken = "ORDERFLOW_TELEGRAM_TOKEN"
)

func init() { registerProvider(func() provider { return &telegramProvider{} }) }

type telegramProvider struct {
	url       string
	tokenFile string
	chat      string
}

func (*telegramProvider) name() string { return "telegram" }
func (*telegramProvider) step() string { return "" }

func (p *telegramProvider) register(fs *flag.FlagSet) {
	fs.StringVar(&p.url, "telegram-base-url", "", "Telegram Bot API URL (default "+telegram.DefaultBaseURL+", or --sim-url)")
	fs.StringVar(&p.tokenFile, "telegram-token-file", "", "file holding the Telegram bot token (or set "+envTelegramToken+"); without a token (and no Slack webhook) alerts are only logged")
	fs.StringVar(&p.chat, "telegram-chat-id", "", "Telegram chat to alert: a numeric id or @channel")
}

func (p *telegramProvider) configure(s *setup) any {
	token, ok := s.optional(p.tokenFile, envTelegramToken, "telegram-token-file")
	if !ok {
		return nil
	}
	token = s.orSim(token, simTelegramToken)
	if token == "" {
		return nil
	}
	return &telegram.Config{
		BaseURL: s.base(p.url),
		Token:   token,
		ChatID:  s.need(s.orSim(p.chat, simTelegramChat), "telegram-chat-id"),
		Logger:  s.logger(),
	}
}

func (p *telegramProvider) build(cfg any, b *builder) error {
	tg, err := telegram.New(*cfg.(*telegram.Config))
	if err != nil {
		return err
	}
	b.alerter("telegram", tg)
	b.onClose(func() {
		if err := tg.Close(); err != nil {
			b.log.Warn("telegram: alerts not sent before stopping", "err", err)
		}
	})
	return nil
}
