package main

import (
	"flag"
	"time"

	"github.com/orderflow/orderflow/integrations/mailgun"
	"github.com/orderflow/orderflow/processor"
)

// Mailgun is the email step: the order confirmation from a template.

const (
	simMailgunKey    = "key-orderflow-simulator"
	simMailgunDomain = "mg.shop.example"
	simMailgunFrom   = "Orderflow Shop <orders@mg.shop.example>"

	envMailgunKey = "ORDERFLOW_MAILGUN_API_KEY"
)

func init() { registerProvider(func() provider { return &mailgunProvider{} }) }

type mailgunProvider struct {
	url      string
	keyFile  string
	domain   string
	from     string
	template string
	rate     rateFlag
}

func (*mailgunProvider) name() string { return "mailgun" }
func (*mailgunProvider) step() string { return processor.StepEmail }

func (p *mailgunProvider) register(fs *flag.FlagSet) {
	fs.StringVar(&p.url, "mailgun-base-url", "", "Mailgun API URL (default "+mailgun.DefaultBaseURL+", or --sim-url)")
	fs.StringVar(&p.keyFile, "mailgun-api-key-file", "", "file holding the Mailgun API key (or set "+envMailgunKey+")")
	fs.StringVar(&p.domain, "mailgun-domain", "", "Mailgun sending domain, e.g. mg.example.com")
	fs.StringVar(&p.from, "mailgun-from", "", "sender of the confirmation email (empty: the template's)")
	fs.Var(&p.rate, "mailgun-requests-per-second", "requests a second to Mailgun, for all processors together with --redis-addr; Mailgun publishes no number, so 0 (the default) is no limit, only the pause after a 429")
	fs.StringVar(&p.template, "mailgun-template", mailgun.DefaultTemplate, "Mailgun template of the confirmation email")
}

func (p *mailgunProvider) configure(s *setup) any {
	if !s.enabled(processor.StepEmail) {
		return nil
	}
	return &mailgun.Config{
		BaseURL: s.base(p.url),
		// One call is bounded by --step-timeout, as the README says.
		Timeout:  s.p.callTimeout(),
		APIKey:   s.read(p.keyFile, envMailgunKey, simMailgunKey, "mailgun-api-key-file"),
		Domain:   s.need(s.orSim(p.domain, simMailgunDomain), "mailgun-domain"),
		From:     s.orSim(p.from, simMailgunFrom),
		Template: p.template,
		Logger:   s.logger(),
	}
}

func (p *mailgunProvider) build(cfg any, b *builder) error {
	c := *cfg.(*mailgun.Config)
	hc, _, err := b.quotas.limitedClient(perSecond("mailgun:"+c.Domain, p.rate.v), orDefault(c.Timeout, 15*time.Second), 0, nil)
	if err != nil {
		return err
	}
	if hc != nil {
		c.HTTPClient = hc
	}
	cl, err := mailgun.New(c)
	if err != nil {
		return err
	}
	b.prov.Mailer = cl
	return nil
}
