package main

import (
	"flag"
	"net/http"
	"strings"
	"time"

	"github.com/orderflow/orderflow/integrations/quota"
	"github.com/orderflow/orderflow/integrations/zoho"
	"github.com/orderflow/orderflow/processor"
)

// Zoho CRM is the crm step: a contact and a deal per order.

const (
	simZohoClientID     = "1000.ORDERFLOWSIMULATOR"
	simZohoClientSecret = "orderflow-simulator"
	simZohoRefreshToken = "1000.orderflow.simulator"

	envZohoClientSecret = "ORDERFLOW_ZOHO_CLIENT_SECRET"
	envZohoRefreshToken = "ORDERFLOW_ZOHO_REFRESH_TOKEN"

	// defaultZohoConcurrency is the Standard edition's limit of calls in
	// flight per organisation.
	defaultZohoConcurrency = 10
)

func init() { registerProvider(func() provider { return &zohoProvider{} }) }

type zohoProvider struct {
	url          string
	accountsURL  string
	clientID     string
	secretFile   string
	refreshFile  string
	dealKeyField string
	dealStage    string
	currencyMode string
	homeCurrency string
	maxConc      countFlag
	conc         int // the bound in force, from configure
}

func (*zohoProvider) name() string { return "zoho" }
func (*zohoProvider) step() string { return processor.StepCRM }

func (p *zohoProvider) register(fs *flag.FlagSet) {
	fs.StringVar(&p.url, "zoho-api-url", "", "Zoho CRM API URL (default "+zoho.DefaultAPIBaseURL+", or --sim-url)")
	fs.StringVar(&p.accountsURL, "zoho-accounts-url", "", "Zoho accounts (OAuth) URL (default "+zoho.DefaultAccountsURL+", or --sim-url)")
	fs.StringVar(&p.clientID, "zoho-client-id", "", "Zoho OAuth client id")
	fs.StringVar(&p.secretFile, "zoho-client-secret-file", "", "file holding the Zoho OAuth client secret (or set "+envZohoClientSecret+")")
	fs.StringVar(&p.refreshFile, "zoho-refresh-token-file", "", "file holding the Zoho OAuth refresh token (or set "+envZohoRefreshToken+")")
	fs.StringVar(&p.dealKeyField, "zoho-deal-key-field", zoho.DefaultDealKeyField, "API name of the unique Deals field holding the order id")
	fs.StringVar(&p.dealStage, "zoho-deal-stage", zoho.DefaultDealStage, "Stage of the order's deal")
	fs.StringVar(&p.currencyMode, "zoho-currency-mode", zoho.CurrencyAuto, "how a deal's currency is booked: auto (read the CRM's currencies), multi (always send Currency) or home (only --zoho-home-currency); a deal in a currency the CRM cannot book gets no Amount")
	p.maxConc.v = defaultZohoConcurrency
	fs.Var(&p.maxConc, "zoho-max-concurrent", "CRM calls in flight, for all processors together with --redis-addr (Zoho's limit per organisation: 5 Free, 10 Standard, 15 Professional, 20 Enterprise, 25 Ultimate); 0 = no bound. With --sim-url and not set: no bound (unless --sim-enforces-limits)")
	fs.StringVar(&p.homeCurrency, "zoho-home-currency", "", "the CRM's home currency (ISO code, e.g. EUR); needed by --zoho-currency-mode home")
}

func (p *zohoProvider) configure(s *setup) any {
	if !s.enabled(processor.StepCRM) {
		return nil
	}
	p.conc = p.maxConc.v
	if s.unlimited() && !p.maxConc.set {
		p.conc = 0
	}
	return &zoho.Config{
		APIBaseURL: s.base(p.url),
		// One call is bounded by --step-timeout, as the README says.
		Timeout:      s.p.callTimeout(),
		AccountsURL:  s.base(p.accountsURL),
		ClientID:     s.need(s.orSim(p.clientID, simZohoClientID), "zoho-client-id"),
		ClientSecret: s.read(p.secretFile, envZohoClientSecret, simZohoClientSecret, "zoho-client-secret-file"),
		RefreshToken: s.read(p.refreshFile, envZohoRefreshToken, simZohoRefreshToken, "zoho-refresh-token-file"),
		DealKeyField: p.dealKeyField,
		DealStage:    p.dealStage,
		CurrencyMode: p.currencyMode,
		HomeCurrency: p.homeCurrency,
		Location:     s.location(),
		Logger:       s.logger(),
	}
}

func (p *zohoProvider) build(cfg any, b *builder) error {
	c := *cfg.(*zoho.Config)
	// The concurrency limit counts CRM API calls, not the OAuth token
	// endpoint's. A 429 carries no Retry-After: every processor pauses a
	// second, while the semaphore keeps the fleet under the limit.
	hc, _, err := b.quotas.limitedClient(quota.Limit{Name: "zoho:" + c.ClientID, Concurrency: p.conc},
		orDefault(c.Timeout, 15*time.Second), time.Second,
		func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/crm/") })
	if err != nil {
		return err
	}
	if hc != nil {
		c.HTTPClient = hc
	}
	cl, err := zoho.New(c)
	if err != nil {
		return err
	}
	b.prov.CRM = cl
	return nil
}
