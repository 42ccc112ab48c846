package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/integrations/airtable"
	"github.com/orderflow/orderflow/integrations/labelstore"
	"github.com/orderflow/orderflow/integrations/mailgun"
	"github.com/orderflow/orderflow/integrations/netvisor"
	"github.com/orderflow/orderflow/integrations/postnord"
	"github.com/orderflow/orderflow/integrations/stripe"
	"github.com/orderflow/orderflow/integrations/telegram"
	"github.com/orderflow/orderflow/integrations/zoho"
	"github.com/orderflow/orderflow/processor"
)

// Test credentials used with --sim-url where none are given. The simulator
// checks the form of credentials (a test-mode Stripe key, a bot token in
// the Telegram path, ...), not their value.
const (
	simStripeKey        = "sk_test_orderflow_simulator"
	simZohoClientID     = "1000.ORDERFLOWSIMULATOR"
	simZohoClientSecret = "orderflow-simulator"
	simZohoRefreshToken = "1000.orderflow.simulator"
	simAirtableToken    = "patOrderflowSimulator.0000"
	simAirtableBaseID   = "appOrderflowSim"
	simAirtableTable    = "Orders"
	simPostNordAPIKey   = "00000000000000000000000000000000"
	simPostNordCustomer = "1234567890"
	simNetvisorSender   = "orderflow"
	simNetvisorCustID   = "SIM_CUSTOMER"
	simNetvisorCustKey  = "simulator-customer-key"
	simNetvisorPartID   = "SIM_PARTNER"
	simNetvisorPartKey  = "simulator-partner-key"
	simNetvisorOrgID    = "1234567-8"
	simNetvisorCustomer = "1"
	simNetvisorProduct  = "1"
	simMailgunKey       = "key-orderflow-simulator"
	simMailgunDomain    = "mg.shop.example"
	simMailgunFrom      = "Orderflow Shop <orders@mg.shop.example>"
	simTelegramToken    = "123456:ORDERFLOW-simulator"
	simTelegramChat     = "-1001000000000"
)

// Environment variables holding provider secrets when no --*-file flag
// names a file. Secrets are never flags of their own, so they do not end up
// in shell history or process listings.
const (
	envStripeKey        = "ORDERFLOW_STRIPE_SECRET_KEY"
	envZohoClientSecret = "ORDERFLOW_ZOHO_CLIENT_SECRET"
	envZohoRefreshToken = "ORDERFLOW_ZOHO_REFRESH_TOKEN"
	envAirtableToken    = "ORDERFLOW_AIRTABLE_TOKEN"
	envPostNordAPIKey   = "ORDERFLOW_POSTNORD_API_KEY"
	envNetvisorCustKey  = "ORDERFLOW_NETVISOR_CUSTOMER_KEY"
	envNetvisorPartKey  = "ORDERFLOW_NETVISOR_PARTNER_KEY"
	envMailgunKey       = "ORDERFLOW_MAILGUN_API_KEY"
	envTelegramToken    = "ORDERFLOW_TELEGRAM_TOKEN"
)

// providerFlags are the provider settings of every command that runs the
// step chain (`orderflow processor`, `orderflow dev`).
type providerFlags struct {
	simURL   string
	steps    string
	labelDir string

	stripeURL     string
	stripeKeyFile string
	// stripeKey, when set, is used instead of the file or environment; dev
	// mode sets it from its --stripe-api-key flag.
	stripeKey string

	zohoURL          string
	zohoAccountsURL  string
	zohoClientID     string
	zohoSecretFile   string
	zohoRefreshFile  string
	zohoDealKeyField string
	zohoDealStage    string
	zohoCurrencyMode string
	zohoHomeCurrency string

	airtableURL       string
	airtableTokenFile string
	airtableBaseID    string
	airtableTable     string
	airtableRate      rateFlag
	airtableFailure   string

	postnordURL        string
	postnordKeyFile    string
	postnordCustomer   string
	postnordIssuer     string
	postnordService    string
	postnordSender     string
	postnordStreet     string
	postnordPostalCode string
	postnordCity       string
	postnordCountry    string
	postnordTest       bool

	netvisorURL      string
	netvisorSender   string
	netvisorCustID   string
	netvisorCustFile string
	netvisorPartID   string
	netvisorPartFile string
	netvisorOrgID    string
	netvisorCustomer string
	netvisorShared   bool
	netvisorProduct  string
	netvisorAlg      string
	netvisorMax      countFlag
	netvisorRCCode   string
	netvisorExpCode  string

	mailgunURL      string
	mailgunKeyFile  string
	mailgunDomain   string
	mailgunFrom     string
	mailgunTemplate string

	telegramURL       string
	telegramTokenFile string
	telegramChat      string

	// getenv reads secrets from the environment; nil means os.Getenv.
	// Tests replace it.
	getenv func(string) string
}

// defaultSteps is every step of the chain.
var defaultSteps = strings.Join(processor.Chain, ",")

func (p *providerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.simURL, "sim-url", "", "point every provider client at the provider simulator at this URL (orderflow sim); missing credentials get test values")
	fs.StringVar(&p.steps, "steps", defaultSteps, "steps to run, comma-separated ("+defaultSteps+"); a step left out is recorded as skipped")
	fs.StringVar(&p.labelDir, "label-dir", "labels", "folder the shipping-label PDFs are written to")

	fs.StringVar(&p.stripeURL, "stripe-base-url", "", "Stripe API URL (default "+stripe.DefaultBaseURL+", or --sim-url)")
	fs.StringVar(&p.stripeKeyFile, "stripe-secret-key-file", "", "file holding the Stripe secret or restricted key (or set "+envStripeKey+")")

	fs.StringVar(&p.zohoURL, "zoho-api-url", "", "Zoho CRM API URL (default "+zoho.DefaultAPIBaseURL+", or --sim-url)")
	fs.StringVar(&p.zohoAccountsURL, "zoho-accounts-url", "", "Zoho accounts (OAuth) URL (default "+zoho.DefaultAccountsURL+", or --sim-url)")
	fs.StringVar(&p.zohoClientID, "zoho-client-id", "", "Zoho OAuth client id")
	fs.StringVar(&p.zohoSecretFile, "zoho-client-secret-file", "", "file holding the Zoho OAuth client secret (or set "+envZohoClientSecret+")")
	fs.StringVar(&p.zohoRefreshFile, "zoho-refresh-token-file", "", "file holding the Zoho OAuth refresh token (or set "+envZohoRefreshToken+")")
	fs.StringVar(&p.zohoDealKeyField, "zoho-deal-key-field", zoho.DefaultDealKeyField, "API name of the unique Deals field holding the order id")
	fs.StringVar(&p.zohoDealStage, "zoho-deal-stage", zoho.DefaultDealStage, "Stage of the order's deal")
	fs.StringVar(&p.zohoCurrencyMode, "zoho-currency-mode", zoho.CurrencyAuto, "how a deal's currency is booked: auto (read the CRM's currencies), multi (always send Currency) or home (only --zoho-home-currency); a deal in a currency the CRM cannot book gets no Amount")
	fs.StringVar(&p.zohoHomeCurrency, "zoho-home-currency", "", "the CRM's home currency (ISO code, e.g. EUR); needed by --zoho-currency-mode home")

	fs.StringVar(&p.airtableURL, "airtable-base-url", "", "Airtable API URL (default "+airtable.DefaultBaseURL+", or --sim-url)")
	fs.StringVar(&p.airtableTokenFile, "airtable-token-file", "", "file holding the Airtable personal access token (or set "+envAirtableToken+")")
	fs.StringVar(&p.airtableBaseID, "airtable-base-id", "", "Airtable base id (app…)")
	fs.StringVar(&p.airtableTable, "airtable-table", "", "Airtable table id (tbl…) or name of the production log")
	p.airtableRate.v = airtable.DefaultRequestsPerSecond
	fs.Var(&p.airtableRate, "airtable-requests-per-second", "client-side limit of requests to the Airtable base, each carrying up to 10 orders; 0 = no limit. "+
		"With --sim-url the default is no limit, since the simulator does not enforce Airtable's limit")

	fs.StringVar(&p.airtableFailure, "airtable-failure-field", "-", "field for the step and reason of a dead-lettered order (- : none, the reason then goes into the status field)")

	fs.StringVar(&p.postnordURL, "postnord-base-url", "", "PostNord API URL (default "+postnord.DefaultBaseURL+", or --sim-url)")
	fs.StringVar(&p.postnordKeyFile, "postnord-api-key-file", "", "file holding the PostNord API key (or set "+envPostNordAPIKey+")")
	fs.StringVar(&p.postnordCustomer, "postnord-customer-number", "", "PostNord customer number of the sender")
	fs.StringVar(&p.postnordIssuer, "postnord-issuer-code", "Z12", "PostNord issuer of the customer number: Z11 DK, Z12 SE, Z13 NO, Z14 FI")
	fs.StringVar(&p.postnordService, "postnord-service-code", "19", "PostNord basic service code (19 MyPack Collect, 17 MyPack Home)")
	fs.StringVar(&p.postnordSender, "postnord-sender-name", "", "sender name on the label")
	fs.StringVar(&p.postnordStreet, "postnord-sender-street", "", "sender street address")
	fs.StringVar(&p.postnordPostalCode, "postnord-sender-postal-code", "", "sender postal code")
	fs.StringVar(&p.postnordCity, "postnord-sender-city", "", "sender city")
	fs.StringVar(&p.postnordCountry, "postnord-sender-country", "", "sender country (ISO 3166-1 alpha-2, e.g. SE)")
	fs.BoolVar(&p.postnordTest, "postnord-test", false, "book in PostNord's test mode (validated only, a \"Test\" label)")

	fs.StringVar(&p.netvisorURL, "netvisor-base-url", "", "Netvisor API URL (default "+netvisor.DefaultBaseURL+", or --sim-url)")
	fs.StringVar(&p.netvisorSender, "netvisor-sender", "orderflow", "name of the sending software, as registered with Netvisor")
	fs.StringVar(&p.netvisorCustID, "netvisor-customer-id", "", "Netvisor integration user (customer) id")
	fs.StringVar(&p.netvisorCustFile, "netvisor-customer-key-file", "", "file holding the Netvisor customer key (or set "+envNetvisorCustKey+")")
	fs.StringVar(&p.netvisorPartID, "netvisor-partner-id", "", "Netvisor software partner id")
	fs.StringVar(&p.netvisorPartFile, "netvisor-partner-key-file", "", "file holding the Netvisor partner key (or set "+envNetvisorPartKey+")")
	fs.StringVar(&p.netvisorOrgID, "netvisor-organisation-id", "", "business id of the invoicing company, e.g. 1234567-8")
	fs.StringVar(&p.netvisorCustomer, "netvisor-customer", "", "Netvisor customer the invoices of buyers without a VAT number are linked to (its Netvisor key)")
	fs.BoolVar(&p.netvisorShared, "netvisor-shared-customer-only", false, "link business buyers' invoices to --netvisor-customer too, instead of a Netvisor customer per VAT number (code = the VAT number, added on the first order)")
	fs.StringVar(&p.netvisorProduct, "netvisor-product", "", "Netvisor product every order line is linked to (its Netvisor key)")
	fs.StringVar(&p.netvisorAlg, "netvisor-mac-algorithm", netvisor.AlgorithmSHA256, "Netvisor MAC algorithm: SHA256 or HMACSHA256")
	fs.StringVar(&p.netvisorRCCode, "netvisor-reverse-charge-vat-code", "EUMY", "vatcode of reverse-charge lines: EUMY (EU sales of goods), EUPM309 or EUPM312 (EU sales of services)")
	fs.StringVar(&p.netvisorExpCode, "netvisor-export-vat-code", "EUUM", "vatcode of untaxed lines whose goods leave the EU")
	p.netvisorMax.v = netvisor.DefaultMaxConcurrent
	fs.Var(&p.netvisorMax, "netvisor-max-concurrent", "requests in flight to Netvisor; 0 = no bound. With --sim-url and not set: no bound (the simulator has none)")

	fs.StringVar(&p.mailgunURL, "mailgun-base-url", "", "Mailgun API URL (default "+mailgun.DefaultBaseURL+", or --sim-url)")
	fs.StringVar(&p.mailgunKeyFile, "mailgun-api-key-file", "", "file holding the Mailgun API key (or set "+envMailgunKey+")")
	fs.StringVar(&p.mailgunDomain, "mailgun-domain", "", "Mailgun sending domain, e.g. mg.example.com")
	fs.StringVar(&p.mailgunFrom, "mailgun-from", "", "sender of the confirmation email (empty: the template's)")
	fs.StringVar(&p.mailgunTemplate, "mailgun-template", mailgun.DefaultTemplate, "Mailgun template of the confirmation email")

	fs.StringVar(&p.telegramURL, "telegram-base-url", "", "Telegram Bot API URL (default "+telegram.DefaultBaseURL+", or --sim-url)")
	fs.StringVar(&p.telegramTokenFile, "telegram-token-file", "", "file holding the Telegram bot token (or set "+envTelegramToken+"); without a token alerts are only logged")
	fs.StringVar(&p.telegramChat, "telegram-chat-id", "", "Telegram chat to alert: a numeric id or @channel")
}

// enabledSteps parses --steps. The details step is always on: every other
// step needs the order it reads.
func (p *providerFlags) enabledSteps() (map[string]bool, error) {
	on := map[string]bool{processor.StepDetails: true}
	for _, s := range splitList(p.steps) {
		s = strings.ToLower(s)
		if !slices.Contains(processor.Chain, s) {
			return nil, usagef("--steps: unknown step %q (steps: %s)", s, defaultSteps)
		}
		on[s] = true
	}
	return on, nil
}

// providerConfigs are the client configurations built from the flags. A
// nil pointer is a step that is off; Telegram is nil when alerts are only
// logged.
type providerConfigs struct {
	Stripe   stripe.Config
	Zoho     *zoho.Config
	Airtable *airtable.Config
	PostNord *postnord.Config
	Netvisor *netvisor.Config
	Mailgun  *mailgun.Config
	Telegram *telegram.Config
	LabelDir string
}

// missing collects the flags of absent required settings, for one usage
// error naming them all.
type missing []string

func (m *missing) need(value, flagName string) string {
	if value == "" {
		*m = append(*m, flagName)
	}
	return value
}

// secret reads a secret from its --*-file flag or its environment variable.
func (p *providerFlags) secret(file, env string) (string, error) {
	if file == "" {
		getenv := p.getenv
		if getenv == nil {
			return secretFromFileOrEnv("", env)
		}
		return getenv(env), nil
	}
	return secretFromFileOrEnv(file, env)
}

// orSim returns v, or with --sim-url set and v empty, the simulator's value.
func (p *providerFlags) orSim(v, simValue string) string {
	if v == "" && p.simURL != "" {
		return simValue
	}
	return v
}

// configs turns the flags into client configurations. Explicit settings win
// over --sim-url, so one provider can be real while the others are
// simulated. A required setting missing for an enabled step is a usage
// error naming its flag.
func (p *providerFlags) configs(logger *slog.Logger) (providerConfigs, error) {
	if p.simURL != "" {
		u, err := url.Parse(p.simURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return providerConfigs{}, usagef("--sim-url %q: want an http(s) URL such as http://127.0.0.1:8090", p.simURL)
		}
		p.simURL = strings.TrimRight(p.simURL, "/")
	}
	on, err := p.enabledSteps()
	if err != nil {
		return providerConfigs{}, err
	}
	var miss missing
	var errs []error
	read := func(file, env, simValue, flagName string) string {
		v, err := p.secret(file, env)
		if err != nil {
			errs = append(errs, usagef("--%s: %v", flagName, err))
			return ""
		}
		return miss.need(p.orSim(v, simValue), flagName+" (or "+env+")")
	}
	base := func(v string) string { return p.orSim(v, p.simURL) }

	var c providerConfigs
	c.LabelDir = p.labelDir
	stripeKey := p.stripeKey
	if stripeKey == "" {
		stripeKey = read(p.stripeKeyFile, envStripeKey, simStripeKey, "stripe-secret-key-file")
	}
	c.Stripe = stripe.Config{BaseURL: base(p.stripeURL), SecretKey: stripeKey, Logger: logger}
	if on[processor.StepCRM] {
		c.Zoho = &zoho.Config{
			APIBaseURL:   base(p.zohoURL),
			AccountsURL:  base(p.zohoAccountsURL),
			ClientID:     miss.need(p.orSim(p.zohoClientID, simZohoClientID), "zoho-client-id"),
			ClientSecret: read(p.zohoSecretFile, envZohoClientSecret, simZohoClientSecret, "zoho-client-secret-file"),
			RefreshToken: read(p.zohoRefreshFile, envZohoRefreshToken, simZohoRefreshToken, "zoho-refresh-token-file"),
			DealKeyField: p.zohoDealKeyField,
			DealStage:    p.zohoDealStage,
			CurrencyMode: p.zohoCurrencyMode,
			HomeCurrency: p.zohoHomeCurrency,
			Logger:       logger,
		}
	}
	if on[processor.StepProductionLog] {
		c.Airtable = &airtable.Config{
			BaseURL: base(p.airtableURL),
			Token:   read(p.airtableTokenFile, envAirtableToken, simAirtableToken, "airtable-token-file"),
			BaseID:  miss.need(p.orSim(p.airtableBaseID, simAirtableBaseID), "airtable-base-id"),
			Table:   miss.need(p.orSim(p.airtableTable, simAirtableTable), "airtable-table"),
			Logger:  logger,

			Fields:            airtable.Fields{Failure: p.airtableFailure},
			RequestsPerSecond: p.airtableRate.v,
			NoRateLimit:       p.airtableRate.v == 0,
		}
		// The simulator does not enforce Airtable's 5 requests per second,
		// so against it the client does not space requests unless told to.
		if p.simURL != "" && !p.airtableRate.set {
			c.Airtable.NoRateLimit = true
		}
	}
	if on[processor.StepShipping] {
		if c.LabelDir == "" {
			miss = append(miss, "label-dir")
		}
		var streets []string
		if s := p.orSim(p.postnordStreet, "Testgatan 1"); s != "" {
			streets = []string{s}
		}
		c.PostNord = &postnord.Config{
			BaseURL:          base(p.postnordURL),
			APIKey:           read(p.postnordKeyFile, envPostNordAPIKey, simPostNordAPIKey, "postnord-api-key-file"),
			Logger:           logger,
			IssuerCode:       p.postnordIssuer,
			CustomerNumber:   miss.need(p.orSim(p.postnordCustomer, simPostNordCustomer), "postnord-customer-number"),
			BasicServiceCode: p.postnordService,
			TestIndicator:    p.postnordTest,
			Consignor: postnord.Party{
				Name:        miss.need(p.orSim(p.postnordSender, "Orderflow Demo Shop"), "postnord-sender-name"),
				Streets:     streets,
				PostalCode:  miss.need(p.orSim(p.postnordPostalCode, "11122"), "postnord-sender-postal-code"),
				City:        miss.need(p.orSim(p.postnordCity, "Stockholm"), "postnord-sender-city"),
				CountryCode: strings.ToUpper(miss.need(p.orSim(p.postnordCountry, "SE"), "postnord-sender-country")),
			},
		}
	}
	if on[processor.StepInvoice] {
		c.Netvisor = &netvisor.Config{
			BaseURL:              base(p.netvisorURL),
			Sender:               miss.need(p.orSim(p.netvisorSender, simNetvisorSender), "netvisor-sender"),
			CustomerID:           miss.need(p.orSim(p.netvisorCustID, simNetvisorCustID), "netvisor-customer-id"),
			CustomerKey:          read(p.netvisorCustFile, envNetvisorCustKey, simNetvisorCustKey, "netvisor-customer-key-file"),
			PartnerID:            miss.need(p.orSim(p.netvisorPartID, simNetvisorPartID), "netvisor-partner-id"),
			PartnerKey:           read(p.netvisorPartFile, envNetvisorPartKey, simNetvisorPartKey, "netvisor-partner-key-file"),
			OrganisationID:       miss.need(p.orSim(p.netvisorOrgID, simNetvisorOrgID), "netvisor-organisation-id"),
			CustomerIdentifier:   miss.need(p.orSim(p.netvisorCustomer, simNetvisorCustomer), "netvisor-customer"),
			SharedCustomerOnly:   p.netvisorShared,
			ProductIdentifier:    miss.need(p.orSim(p.netvisorProduct, simNetvisorProduct), "netvisor-product"),
			Algorithm:            p.netvisorAlg,
			ReverseChargeVATCode: p.netvisorRCCode,
			ExportVATCode:        p.netvisorExpCode,
			MaxConcurrent:        p.netvisorMax.v,
			Logger:               logger,
		}
		if p.netvisorMax.v == 0 || (p.simURL != "" && !p.netvisorMax.set) {
			c.Netvisor.MaxConcurrent = -1
		}
	}
	if on[processor.StepEmail] {
		c.Mailgun = &mailgun.Config{
			BaseURL:  base(p.mailgunURL),
			APIKey:   read(p.mailgunKeyFile, envMailgunKey, simMailgunKey, "mailgun-api-key-file"),
			Domain:   miss.need(p.orSim(p.mailgunDomain, simMailgunDomain), "mailgun-domain"),
			From:     p.orSim(p.mailgunFrom, simMailgunFrom),
			Template: p.mailgunTemplate,
			Logger:   logger,
		}
	}
	// Alerts are optional: without a token they are logged only.
	tgToken, err := p.secret(p.telegramTokenFile, envTelegramToken)
	if err != nil {
		errs = append(errs, usagef("--telegram-token-file: %v", err))
	}
	tgToken = p.orSim(tgToken, simTelegramToken)
	if tgToken != "" {
		c.Telegram = &telegram.Config{
			BaseURL: base(p.telegramURL),
			Token:   tgToken,
			ChatID:  miss.need(p.orSim(p.telegramChat, simTelegramChat), "telegram-chat-id"),
			Logger:  logger,
		}
	}
	if len(errs) > 0 {
		return providerConfigs{}, joinUsage(errs)
	}
	if len(miss) > 0 {
		return providerConfigs{}, usagef("missing provider settings for the enabled steps (--steps %s): --%s; or run against the simulator with --sim-url",
			p.steps, strings.Join(miss, ", --"))
	}
	return c, nil
}

// build constructs the provider clients for the processor. cleanup flushes
// and stops what runs in the background (the Telegram batcher, the Airtable
// batch sender); call it after the processor has stopped.
func (p *providerFlags) build(_ context.Context, logger *slog.Logger) (processor.Providers, func(), error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c, err := p.configs(logger)
	if err != nil {
		return processor.Providers{}, nil, err
	}
	return c.build(logger)
}

// build constructs the clients of c.
func (c providerConfigs) build(logger *slog.Logger) (processor.Providers, func(), error) {
	var prov processor.Providers
	var errs []error
	bad := func(flags string, err error) {
		// A client's own validation names its fields; say which flags
		// those come from.
		errs = append(errs, usagef("%v (flags --%s-*)", err, flags))
	}
	details, err := stripe.New(c.Stripe)
	if err != nil {
		bad("stripe", err)
	} else {
		prov.Details = details
	}
	if c.Zoho != nil {
		if cl, err := zoho.New(*c.Zoho); err != nil {
			bad("zoho", err)
		} else {
			prov.CRM = cl
		}
	}
	var closers []func()
	if c.Airtable != nil {
		if cl, err := airtable.New(*c.Airtable); err != nil {
			bad("airtable", err)
		} else {
			prov.ProductionLog = cl
			closers = append(closers, func() { _ = cl.Close() })
		}
	}
	if c.PostNord != nil {
		labels, err := labelstore.NewDir(c.LabelDir)
		if err != nil {
			errs = append(errs, usagef("--label-dir: %v", err))
		} else {
			cfg := *c.PostNord
			cfg.Labels = labels
			if cl, err := postnord.New(cfg); err != nil {
				bad("postnord", err)
			} else {
				prov.Shipping = cl
			}
		}
	}
	if c.Netvisor != nil {
		if cl, err := netvisor.New(*c.Netvisor); err != nil {
			bad("netvisor", err)
		} else {
			prov.Invoicing = cl
		}
	}
	if c.Mailgun != nil {
		if cl, err := mailgun.New(*c.Mailgun); err != nil {
			bad("mailgun", err)
		} else {
			prov.Mailer = cl
		}
	}
	closeAll := func() {
		for _, f := range closers {
			f()
		}
	}
	if len(errs) > 0 {
		closeAll()
		return processor.Providers{}, nil, joinUsage(errs)
	}
	cleanup := closeAll
	if c.Telegram != nil {
		tg, err := telegram.New(*c.Telegram)
		if err != nil {
			closeAll()
			return processor.Providers{}, nil, usagef("%v (flags --telegram-*)", err)
		}
		prov.Alerter = tg
		cleanup = func() {
			closeAll()
			if err := tg.Close(); err != nil {
				logger.Warn("telegram: alerts not sent before stopping", "err", err)
			}
		}
	} else {
		prov.Alerter = logAlerter{log: logger}
		logger.Info("no Telegram bot configured: alerts are logged only")
	}
	return prov, cleanup, nil
}

// rateFlag is a requests-per-second flag that remembers whether it was
// given (on the command line or in the environment).
type rateFlag struct {
	v   float64
	set bool
}

func (r *rateFlag) String() string {
	if r == nil {
		return ""
	}
	return strconv.FormatFloat(r.v, 'g', -1, 64)
}

func (r *rateFlag) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return errors.New("want a number of requests per second, 0 or more")
	}
	r.v, r.set = v, true
	return nil
}

// countFlag is a non-negative integer flag that remembers whether it was set.
type countFlag struct {
	v   int
	set bool
}

func (c *countFlag) String() string {
	if c == nil {
		return ""
	}
	return strconv.Itoa(c.v)
}

func (c *countFlag) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return errors.New("want a whole number, 0 or more")
	}
	c.v, c.set = v, true
	return nil
}

// joinUsage makes one usage error of several, so that every problem is
// printed, not only the first.
func joinUsage(errs []error) error {
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return usageError{strings.Join(msgs, "; ")}
}

// logAlerter is the Alerter used when no Telegram bot is configured: it
// writes each alert to the log (order id, step and text; the text carries
// no customer data).
type logAlerter struct{ log *slog.Logger }

func (a logAlerter) Alert(_ context.Context, al integrations.Alert) error {
	a.log.Warn("alert", "order_id", al.OrderID, "step", al.Step, "text", al.Text)
	return nil
}
