package main

import (
	"flag"

	"github.com/orderflow/orderflow/integrations/stripe"
	"github.com/orderflow/orderflow/processor"
)

// Stripe reads the order's details. Its step is always on.

const (
	simStripeKey = "sk_test_orderflowsimulator" // letters and digits only after sk_test_: stripe-mock refuses a key with another "_"
	// envStripeKey holds the key when no --stripe-secret-key-file is given.
	// Secrets are never flags of their own, so they do not end up in shell
	// history or process listings.
	envStripeKey = "ORDERFLOW_STRIPE_SECRET_KEY"
)

func init() { registerProvider(func() provider { return &stripeProvider{} }) }

type stripeProvider struct {
	url     string
	keyFile string
	// key, when set, is used instead of the file or environment; dev mode
	// sets it from its --stripe-api-key flag.
	key string
}

func (*stripeProvider) name() string { return "stripe" }
func (*stripeProvider) step() string { return processor.StepDetails }

func (p *stripeProvider) register(fs *flag.FlagSet) {
	fs.StringVar(&p.url, "stripe-base-url", "", "Stripe API URL (default "+stripe.DefaultBaseURL+", or --sim-url)")
	fs.StringVar(&p.keyFile, "stripe-secret-key-file", "", "file holding the Stripe secret or restricted key (or set "+envStripeKey+")")
}

func (p *stripeProvider) configure(s *setup) any {
	key := p.key
	if key == "" {
		key = s.read(p.keyFile, envStripeKey, simStripeKey, "stripe-secret-key-file")
	}
	// DHL declares customs for a parcel leaving the EU VAT area, from
	// the products' customs data.
	customs := s.providerOf(processor.StepShipping) == "dhl"
	return &stripe.Config{BaseURL: s.base(p.url), SecretKey: key, Logger: s.logger(), ProductCustoms: customs}
}

func (p *stripeProvider) build(cfg any, b *builder) error {
	cl, err := stripe.New(*cfg.(*stripe.Config))
	if err != nil {
		return err
	}
	b.prov.Details = cl
	return nil
}
