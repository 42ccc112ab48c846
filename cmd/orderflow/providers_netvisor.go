package main

import (
	"flag"
	"time"

	"github.com/orderflow/orderflow/integrations/netvisor"
	"github.com/orderflow/orderflow/integrations/quota"
	"github.com/orderflow/orderflow/processor"
)

// Netvisor is the invoice step: a sales invoice per order.

const (
	simNetvisorSender   = "orderflow"
	simNetvisorCustID   = "SIM_CUSTOMER"
	simNetvisorCustKey  = "simulator-customer-key"
	simNetvisorPartID   = "SIM_PARTNER"
	simNetvisorPartKey  = "simulator-partner-key"
	simNetvisorOrgID    = "1234567-8"
	simNetvisorCustomer = "1"
	simNetvisorProduct  = "1"

	envNetvisorCustKey = "ORDERFLOW_NETVISOR_CUSTOMER_KEY"
	envNetvisorPartKey = "ORDERFLOW_NETVISOR_PARTNER_KEY"
)

func init() { registerProvider(func() provider { return &netvisorProvider{} }) }

type netvisorProvider struct {
	url      string
	sender   string
	custID   string
	custFile string
	partID   string
	partFile string
	orgID    string
	customer string
	shared   bool
	product  string
	alg      string
	max      countFlag
	rcCode   string
	expCode  string
	fxCode   string
	fxProd   string
}

func (*netvisorProvider) name() string { return "netvisor" }
func (*netvisorProvider) step() string { return processor.StepInvoice }

func (p *netvisorProvider) register(fs *flag.FlagSet) {
	fs.StringVar(&p.url, "netvisor-base-url", "", "Netvisor API URL (default "+netvisor.DefaultBaseURL+", or --sim-url)")
	fs.StringVar(&p.sender, "netvisor-sender", "orderflow", "name of the sending software, as registered with Netvisor")
	fs.StringVar(&p.custID, "netvisor-customer-id", "", "Netvisor integration user (customer) id")
	fs.StringVar(&p.custFile, "netvisor-customer-key-file", "", "file holding the Netvisor customer key (or set "+envNetvisorCustKey+")")
	fs.StringVar(&p.partID, "netvisor-partner-id", "", "Netvisor software partner id")
	fs.StringVar(&p.partFile, "netvisor-partner-key-file", "", "file holding the Netvisor partner key (or set "+envNetvisorPartKey+")")
	fs.StringVar(&p.orgID, "netvisor-organisation-id", "", "business id of the invoicing company, e.g. 1234567-8")
	fs.StringVar(&p.customer, "netvisor-customer", "", "Netvisor customer the invoices of buyers without a VAT number are linked to (its Netvisor key)")
	fs.BoolVar(&p.shared, "netvisor-shared-customer-only", false, "link business buyers' invoices to --netvisor-customer too, instead of a Netvisor customer per VAT number (code = the VAT number, added on the first order)")
	fs.StringVar(&p.product, "netvisor-product", "", "Netvisor product every order line is linked to (its Netvisor key)")
	fs.StringVar(&p.alg, "netvisor-mac-algorithm", netvisor.AlgorithmSHA256, "Netvisor MAC algorithm: SHA256 or HMACSHA256")
	fs.StringVar(&p.rcCode, "netvisor-reverse-charge-vat-code", "EUMY", "vatcode of reverse-charge lines: EUMY (EU sales of goods), EUPM309 or EUPM312 (EU sales of services)")
	fs.StringVar(&p.expCode, "netvisor-export-vat-code", "EUUM", "vatcode of lines whose goods leave the EU VAT area (territories outside it included: Åland, the Canary Islands, …), untaxed or carrying a foreign tax")
	fs.StringVar(&p.fxCode, "netvisor-foreign-tax-vat-code", "NONE", "vatcode of the line of a foreign tax (another country's sales tax or VAT) collected on goods leaving the EU VAT area: the tax is a line of its own, not Finnish VAT")
	fs.StringVar(&p.fxProd, "netvisor-foreign-tax-product", "", "Netvisor product of foreign-tax lines (its Netvisor key; default --netvisor-product)")
	p.max.v = netvisor.DefaultMaxConcurrent
	fs.Var(&p.max, "netvisor-max-concurrent", "requests in flight to Netvisor per processor, and with --redis-addr for all processors together; 0 = no bound. With --sim-url and not set: no bound (unless --sim-enforces-limits)")
}

func (p *netvisorProvider) configure(s *setup) any {
	if !s.enabled(processor.StepInvoice) {
		return nil
	}
	c := &netvisor.Config{
		BaseURL: s.base(p.url),
		// One call is bounded by --step-timeout, as the README says.
		Timeout:                     s.p.callTimeout(),
		Sender:                      s.need(s.orSim(p.sender, simNetvisorSender), "netvisor-sender"),
		CustomerID:                  s.need(s.orSim(p.custID, simNetvisorCustID), "netvisor-customer-id"),
		CustomerKey:                 s.read(p.custFile, envNetvisorCustKey, simNetvisorCustKey, "netvisor-customer-key-file"),
		PartnerID:                   s.need(s.orSim(p.partID, simNetvisorPartID), "netvisor-partner-id"),
		PartnerKey:                  s.read(p.partFile, envNetvisorPartKey, simNetvisorPartKey, "netvisor-partner-key-file"),
		OrganisationID:              s.need(s.orSim(p.orgID, simNetvisorOrgID), "netvisor-organisation-id"),
		CustomerIdentifier:          s.need(s.orSim(p.customer, simNetvisorCustomer), "netvisor-customer"),
		SharedCustomerOnly:          p.shared,
		ProductIdentifier:           s.need(s.orSim(p.product, simNetvisorProduct), "netvisor-product"),
		Algorithm:                   p.alg,
		ReverseChargeVATCode:        p.rcCode,
		ExportVATCode:               p.expCode,
		ForeignTaxVATCode:           p.fxCode,
		ForeignTaxProductIdentifier: p.fxProd,
		MaxConcurrent:               p.max.v,
		Location:                    s.location(),
		Logger:                      s.logger(),
	}
	if p.max.v == 0 || (s.unlimited() && !p.max.set) {
		c.MaxConcurrent = -1
	}
	return c
}

func (p *netvisorProvider) build(cfg any, b *builder) error {
	c := *cfg.(*netvisor.Config)
	// The client bounds its own requests in flight; with --redis-addr the
	// same bound holds for the fleet and a 429 pauses every processor.
	l := quota.Limit{Name: "netvisor:" + c.OrganisationID}
	if b.quotas != nil && b.quotas.shared && c.MaxConcurrent > 0 {
		l.Concurrency = c.MaxConcurrent
	}
	hc, _, err := b.quotas.limitedClient(l, orDefault(c.Timeout, 120*time.Second), 0, nil)
	if err != nil {
		return err
	}
	if hc != nil {
		c.HTTPClient = hc
	}
	cl, err := netvisor.New(c)
	if err != nil {
		return err
	}
	b.prov.Invoicing = cl
	return nil
}
