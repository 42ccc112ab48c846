package main

import (
	"flag"
	"strings"
	"time"

	"github.com/orderflow/orderflow/integrations/dhl"
	"github.com/orderflow/orderflow/integrations/labelstore"
	"github.com/orderflow/orderflow/processor"
)

// DHL (Parcel DE Shipping API v2) is an alternative shipping provider,
// picked with --steps shipping=dhl: it creates the shipment and stores its
// label under --label-dir.

// Test credentials with --sim-url: DHL's documented sandbox user and
// billing numbers; the simulator checks their form only.
const (
	simDHLAPIKey        = "sim-dhl-api-key"
	simDHLUser          = "user-valid"
	simDHLPassword      = "SandboxPasswort2023!"
	simDHLBilling       = "33333333330102"
	simDHLBillingIntl   = "33333333335301"
	envDHLAPIKey        = "ORDERFLOW_DHL_API_KEY"
	envDHLPassword      = "ORDERFLOW_DHL_PASSWORD"
	dhlWeightGramsUsage = "weight declared for each parcel, in grams (DHL requires one; at most 31500)"
)

func init() { registerProvider(func() provider { return &dhlProvider{} }) }

type dhlProvider struct {
	url         string
	keyFile     string
	user        string
	passFile    string
	billing     string
	billingIntl string
	profile     string
	sender      string
	street      string
	postalCode  string
	city        string
	country     string
	weight      int
	printFormat string
	rate        rateFlag
	customs     dhl.Customs
}

func (*dhlProvider) name() string { return "dhl" }
func (*dhlProvider) step() string { return processor.StepShipping }

func (p *dhlProvider) register(fs *flag.FlagSet) {
	fs.StringVar(&p.url, "dhl-base-url", "", "DHL API URL (default "+dhl.DefaultBaseURL+", sandbox https://api-sandbox.dhl.com, or --sim-url)")
	fs.StringVar(&p.keyFile, "dhl-api-key-file", "", "file holding the API key of the DHL developer portal app (or set "+envDHLAPIKey+")")
	fs.StringVar(&p.user, "dhl-username", "", "DHL business customer portal user the shipments are booked as")
	fs.StringVar(&p.passFile, "dhl-password-file", "", "file holding that user's password (or set "+envDHLPassword+")")
	fs.StringVar(&p.billing, "dhl-billing-number", "", "14-character billing number of DHL Paket (V01PAK, digits 11-12 01), for parcels within Germany")
	fs.StringVar(&p.billingIntl, "dhl-international-billing-number", "", "billing number of DHL Paket International (V53WPAK, digits 11-12 53); without it an order shipped abroad is dead-lettered")
	fs.StringVar(&p.profile, "dhl-profile", dhl.DefaultProfile, "DHL user group profile")
	fs.StringVar(&p.sender, "dhl-sender-name", "", "sender name on the label")
	fs.StringVar(&p.street, "dhl-sender-street", "", "sender street and house number")
	fs.StringVar(&p.postalCode, "dhl-sender-postal-code", "", "sender postal code")
	fs.StringVar(&p.city, "dhl-sender-city", "", "sender city")
	fs.StringVar(&p.country, "dhl-sender-country", "", "sender country (ISO 3166-1 alpha-2, e.g. DE)")
	fs.IntVar(&p.weight, "dhl-weight-grams", 1000, dhlWeightGramsUsage)
	fs.StringVar(&p.printFormat, "dhl-print-format", "", "label print format (A4, 910-300-700, ...); empty: the portal account's setting")
	fs.StringVar(&p.customs.ExportType, "dhl-export-type", dhl.DefaultExportType, "category of the goods on the customs declaration of a parcel leaving the EU VAT area: COMMERCIAL_GOODS, PRESENT, COMMERCIAL_SAMPLE, DOCUMENT, RETURN_OF_GOODS or OTHER")
	fs.StringVar(&p.customs.ExportDescription, "dhl-export-description", "", "what the goods are, for --dhl-export-type OTHER (at most 80 characters)")
	fs.StringVar(&p.customs.HSCode, "dhl-hs-code", "", "tariff number (6 to 11 digits) declared for goods whose Stripe price and product have no hs_code metadata; empty: none")
	fs.StringVar(&p.customs.OriginCountry, "dhl-origin-country", "", "country of origin (ISO 3166-1 alpha-2) declared for goods whose price and product have no origin_country metadata; empty: none")
	fs.StringVar(&p.customs.ShipperCustomsRef, "dhl-eori", "", "the shop's EORI number, printed on customs declarations (at most 35 characters)")
	fs.Var(&p.rate, "dhl-requests-per-second", "requests a second to DHL, for all processors together with --redis-addr; 0 (the default) is no limit, only the pause after a 429")
}

func (p *dhlProvider) configure(s *setup) any {
	if !s.enabled(processor.StepShipping) {
		return nil
	}
	if s.labelDir() == "" {
		s.need("", "label-dir")
	}
	return &dhl.Config{
		BaseURL: s.base(p.url),
		// One call is bounded by --step-timeout, as the README says.
		Timeout:                    s.p.callTimeout(),
		APIKey:                     s.read(p.keyFile, envDHLAPIKey, simDHLAPIKey, "dhl-api-key-file"),
		Username:                   s.need(s.orSim(p.user, simDHLUser), "dhl-username"),
		Password:                   s.read(p.passFile, envDHLPassword, simDHLPassword, "dhl-password-file"),
		Logger:                     s.logger(),
		Profile:                    p.profile,
		BillingNumber:              s.need(s.orSim(p.billing, simDHLBilling), "dhl-billing-number"),
		InternationalBillingNumber: s.orSim(p.billingIntl, simDHLBillingIntl),
		WeightGrams:                p.weight,
		PrintFormat:                p.printFormat,
		Customs:                    p.customs,
		Shipper: dhl.Shipper{
			Name:       s.need(s.orSim(p.sender, "Orderflow Demo Shop"), "dhl-sender-name"),
			Street:     s.need(s.orSim(p.street, "Sträßchensweg 10"), "dhl-sender-street"),
			PostalCode: s.need(s.orSim(p.postalCode, "53113"), "dhl-sender-postal-code"),
			City:       s.need(s.orSim(p.city, "Bonn"), "dhl-sender-city"),
			Country:    strings.ToUpper(s.need(s.orSim(p.country, "DE"), "dhl-sender-country")),
		},
	}
}

func (p *dhlProvider) build(cfg any, b *builder) error {
	labels, err := labelstore.NewDir(b.labelDir)
	if err != nil {
		return usagef("--label-dir: %v", err)
	}
	c := *cfg.(*dhl.Config)
	c.Labels = labels
	hc, _, err := b.quotas.limitedClient(perSecond("dhl:"+c.Username, p.rate.v), orDefault(c.Timeout, 30*time.Second), 0, nil)
	if err != nil {
		return err
	}
	if hc != nil {
		c.HTTPClient = hc
	}
	cl, err := dhl.New(c)
	if err != nil {
		return err
	}
	b.prov.Shipping = cl
	return nil
}
