package main

import (
	"context"
	"flag"
	"time"

	"github.com/orderflow/orderflow/integrations/airtable"
	"github.com/orderflow/orderflow/integrations/quota"
	"github.com/orderflow/orderflow/processor"
)

// Airtable is the production_log step: one row per order in a base's table.

const (
	simAirtableToken  = "patOrderflowSimulator.0000"
	simAirtableBaseID = "appOrderflowSim"
	simAirtableTable  = "Orders"

	envAirtableToken = "ORDERFLOW_AIRTABLE_TOKEN"
)

func init() { registerProvider(func() provider { return &airtableProvider{} }) }

type airtableProvider struct {
	url       string
	tokenFile string
	baseID    string
	table     string
	rate      rateFlag
	failure   string
}

func (*airtableProvider) name() string { return "airtable" }
func (*airtableProvider) step() string { return processor.StepProductionLog }

func (p *airtableProvider) register(fs *flag.FlagSet) {
	fs.StringVar(&p.url, "airtable-base-url", "", "Airtable API URL (default "+airtable.DefaultBaseURL+", or --sim-url)")
	fs.StringVar(&p.tokenFile, "airtable-token-file", "", "file holding the Airtable personal access token (or set "+envAirtableToken+")")
	fs.StringVar(&p.baseID, "airtable-base-id", "", "Airtable base id (app…)")
	fs.StringVar(&p.table, "airtable-table", "", "Airtable table id (tbl…) or name of the production log")
	p.rate.v = airtable.DefaultRequestsPerSecond
	fs.Var(&p.rate, "airtable-requests-per-second", "client-side limit of requests to the Airtable base, each carrying up to 10 orders; 0 = no limit. "+
		"With --redis-addr the limit holds for all processors together. "+
		"With --sim-url the default is no limit, unless --sim-enforces-limits")
	fs.StringVar(&p.failure, "airtable-failure-field", "-", "field for the step and reason of a dead-lettered order (- : none, the reason then goes into the status field)")
}

func (p *airtableProvider) configure(s *setup) any {
	if !s.enabled(processor.StepProductionLog) {
		return nil
	}
	c := &airtable.Config{
		BaseURL: s.base(p.url),
		// One call is bounded by --step-timeout, as the README says.
		Timeout:  s.p.callTimeout(),
		Token:    s.read(p.tokenFile, envAirtableToken, simAirtableToken, "airtable-token-file"),
		BaseID:   s.need(s.orSim(p.baseID, simAirtableBaseID), "airtable-base-id"),
		Table:    s.need(s.orSim(p.table, simAirtableTable), "airtable-table"),
		Location: s.location(),
		Logger:   s.logger(),

		Fields:            airtable.Fields{Failure: p.failure},
		RequestsPerSecond: p.rate.v,
		NoRateLimit:       p.rate.v == 0,
	}
	// A simulator that does not enforce Airtable's 5 requests per second
	// gets requests unspaced unless told otherwise.
	if s.unlimited() && !p.rate.set {
		c.NoRateLimit = true
	}
	return c
}

// airtableFleetMargin is the share of Airtable's rate the fleet's turns
// use: 5 requests a second become one every 210 ms, which kept a
// three-processor fleet clear of 429s where exact spacing drew one every
// 40 s (make bench, fleet part).
const airtableFleetMargin = 0.95

func (p *airtableProvider) build(cfg any, b *builder) error {
	c := *cfg.(*airtable.Config)
	// Shared by the fleet (with --redis-addr): the rate per base, and the
	// 30 s penalty after a 429 for every processor. The client's own
	// limiter stays as this processor's bound. The fleet's rate is a turn
	// the client waits for before it takes a batch (so the records that
	// arrive meanwhile ride along, up to 10 a request), spaced
	// airtableFleetMargin wider than the limit so that jitter on the way
	// does not put one request too many into one of Airtable's seconds;
	// the HTTP client keeps the shared pause.
	name := "airtable:" + c.BaseID
	if b.quotas != nil && b.quotas.shared && !c.NoRateLimit {
		turn, err := b.quotas.q.Limiter(perSecond(name, c.RequestsPerSecond*airtableFleetMargin))
		if err != nil {
			return err
		}
		c.Turn = func(ctx context.Context) error {
			release, err := turn.Acquire(ctx)
			if err != nil {
				return err
			}
			release()
			return nil
		}
	}
	hc, _, err := b.quotas.limitedClient(quota.Limit{Name: name}, orDefault(c.Timeout, 10*time.Second), airtable.RateLimitPenalty, nil)
	if err != nil {
		return err
	}
	if hc != nil {
		c.HTTPClient = hc
	}
	cl, err := airtable.New(c)
	if err != nil {
		return err
	}
	b.prov.ProductionLog = cl
	b.onClose(func() { _ = cl.Close() })
	return nil
}
