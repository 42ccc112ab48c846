package main

import (
	"flag"
	"strings"
	"time"

	"github.com/orderflow/orderflow/integrations/labelstore"
	"github.com/orderflow/orderflow/integrations/postnord"
	"github.com/orderflow/orderflow/processor"
)

// PostNord is the shipping step: it books the shipment and stores its label
// under --label-dir.

const (
	simPostNordAPIKey   = "00000000000000000000000000000000"
	simPostNordCustomer = "1234567890"

	envPostNordAPIKey = "ORDERFLOW_POSTNORD_API_KEY"
)

func init() { registerProvider(func() provider { return &postnordProvider{} }) }

type postnordProvider struct {
	url        string
	keyFile    string
	customer   string
	issuer     string
	service    string
	sender     string
	street     string
	postalCode string
	city       string
	country    string
	test       bool
	rate       rateFlag
}

func (*postnordProvider) name() string { return "postnord" }
func (*postnordProvider) step() string { return processor.StepShipping }

func (p *postnordProvider) register(fs *flag.FlagSet) {
	fs.StringVar(&p.url, "postnord-base-url", "", "PostNord API URL (default "+postnord.DefaultBaseURL+", or --sim-url)")
	fs.StringVar(&p.keyFile, "postnord-api-key-file", "", "file holding the PostNord API key (or set "+envPostNordAPIKey+")")
	fs.StringVar(&p.customer, "postnord-customer-number", "", "PostNord customer number of the sender")
	fs.StringVar(&p.issuer, "postnord-issuer-code", "Z12", "PostNord issuer of the customer number: Z11 DK, Z12 SE, Z13 NO, Z14 FI")
	fs.StringVar(&p.service, "postnord-service-code", "19", "PostNord basic service code (19 MyPack Collect, 17 MyPack Home)")
	fs.StringVar(&p.sender, "postnord-sender-name", "", "sender name on the label")
	fs.StringVar(&p.street, "postnord-sender-street", "", "sender street address")
	fs.StringVar(&p.postalCode, "postnord-sender-postal-code", "", "sender postal code")
	fs.StringVar(&p.city, "postnord-sender-city", "", "sender city")
	fs.StringVar(&p.country, "postnord-sender-country", "", "sender country (ISO 3166-1 alpha-2, e.g. SE)")
	fs.Var(&p.rate, "postnord-requests-per-second", "requests a second to PostNord, for all processors together with --redis-addr; PostNord publishes no number, so 0 (the default) is no limit, only the pause after a 429")
	fs.BoolVar(&p.test, "postnord-test", false, "book in PostNord's test mode (validated only, a \"Test\" label)")
}

func (p *postnordProvider) configure(s *setup) any {
	if !s.enabled(processor.StepShipping) {
		return nil
	}
	if s.labelDir() == "" {
		s.need("", "label-dir")
	}
	var streets []string
	if st := s.orSim(p.street, "Testgatan 1"); st != "" {
		streets = []string{st}
	}
	return &postnord.Config{
		BaseURL: s.base(p.url),
		// One call is bounded by --step-timeout, as the README says.
		Timeout:          s.p.callTimeout(),
		APIKey:           s.read(p.keyFile, envPostNordAPIKey, simPostNordAPIKey, "postnord-api-key-file"),
		Logger:           s.logger(),
		IssuerCode:       p.issuer,
		CustomerNumber:   s.need(s.orSim(p.customer, simPostNordCustomer), "postnord-customer-number"),
		BasicServiceCode: p.service,
		TestIndicator:    p.test,
		Consignor: postnord.Party{
			Name:        s.need(s.orSim(p.sender, "Orderflow Demo Shop"), "postnord-sender-name"),
			Streets:     streets,
			PostalCode:  s.need(s.orSim(p.postalCode, "11122"), "postnord-sender-postal-code"),
			City:        s.need(s.orSim(p.city, "Stockholm"), "postnord-sender-city"),
			CountryCode: strings.ToUpper(s.need(s.orSim(p.country, "SE"), "postnord-sender-country")),
		},
	}
}

func (p *postnordProvider) build(cfg any, b *builder) error {
	labels, err := labelstore.NewDir(b.labelDir)
	if err != nil {
		return usagef("--label-dir: %v", err)
	}
	c := *cfg.(*postnord.Config)
	c.Labels = labels
	hc, _, err := b.quotas.limitedClient(perSecond("postnord:"+c.CustomerNumber, p.rate.v), orDefault(c.Timeout, 30*time.Second), 0, nil)
	if err != nil {
		return err
	}
	if hc != nil {
		c.HTTPClient = hc
	}
	cl, err := postnord.New(c)
	if err != nil {
		return err
	}
	b.prov.Shipping = cl
	return nil
}
