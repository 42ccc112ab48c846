package processor

import (
	"context"
	"errors"

	"github.com/orderflow/orderflow/integrations"
)

// BuiltinChain returns the built-in steps of the configured providers in
// their default order: details, crm, production_log, shipping, invoice,
// email. A nil provider leaves its step out (recorded as skipped in the
// order state).
func BuiltinChain(prov Providers) []Step {
	var c []Step
	for _, name := range Chain {
		if s := BuiltinStep(name, prov); s != nil {
			c = append(c, s)
		}
	}
	return c
}

// BuiltinStep returns the built-in step of that name with its provider
// from prov; nil when the name is not a built-in step or its provider is
// nil.
func BuiltinStep(name string, prov Providers) Step {
	switch name {
	case StepDetails:
		if prov.Details != nil {
			return detailsStep{prov.Details}
		}
	case StepCRM:
		if prov.CRM != nil {
			return crmStep{prov.CRM}
		}
	case StepProductionLog:
		if prov.ProductionLog != nil {
			return productionLogStep{prov.ProductionLog}
		}
	case StepShipping:
		if prov.Shipping != nil {
			return shippingStep{prov.Shipping}
		}
	case StepInvoice:
		if prov.Invoicing != nil {
			return invoiceStep{prov.Invoicing}
		}
	case StepEmail:
		if prov.Mailer != nil {
			return emailStep{prov.Mailer}
		}
	}
	return nil
}

// detailsStep reads the paid order; its result becomes State.Order.
type detailsStep struct{ p OrderDetails }

func (detailsStep) Name() string     { return StepDetails }
func (detailsStep) Idempotent() bool { return true }
func (detailsStep) Reads() []string  { return nil }
func (s detailsStep) Run(ctx context.Context, in Input) (any, error) {
	o, err := s.p.OrderDetails(ctx, in.OrderID)
	if err != nil {
		return nil, err
	}
	if o.ID == "" {
		o.ID = in.OrderID
	}
	if o.Number == "" {
		o.Number = integrations.OrderNumber(o.ID)
	}
	return o, nil
}

// crmStep records the customer and the deal; an upsert, so idempotent.
type crmStep struct{ p CRM }

func (crmStep) Name() string     { return StepCRM }
func (crmStep) Idempotent() bool { return true }
func (crmStep) Reads() []string  { return nil }
func (s crmStep) Run(ctx context.Context, in Input) (any, error) {
	return s.p.UpsertContactAndDeal(ctx, in.Order)
}

// productionLogStep upserts the order's production-log row with the steps
// done so far.
type productionLogStep struct{ p ProductionLog }

func (productionLogStep) Name() string     { return StepProductionLog }
func (productionLogStep) Idempotent() bool { return true }
func (productionLogStep) Reads() []string  { return nil }
func (s productionLogStep) Run(ctx context.Context, in Input) (any, error) {
	return s.p.UpsertOrder(ctx, in.Order, in.Completed())
}

// shippingStep books the shipment: not idempotent, reconciled by the
// order's reference when the provider can look bookings up.
type shippingStep struct{ p Shipping }

func (shippingStep) Name() string     { return StepShipping }
func (shippingStep) Idempotent() bool { return false }
func (shippingStep) Reads() []string  { return nil }
func (s shippingStep) Run(ctx context.Context, in Input) (any, error) {
	return s.p.CreateShipment(ctx, in.Order)
}
func (s shippingStep) Lookup(in Input) (func(context.Context) (any, bool, error), string) {
	f, ok := s.p.(ShipmentFinder)
	if !ok {
		return nil, ""
	}
	o := in.Order
	return func(ctx context.Context) (any, bool, error) {
		return f.FindShipment(ctx, o)
	}, "shipment of order " + o.ID
}

// invoiceStep creates the invoice: not idempotent, always reconciled by
// the invoice number.
type invoiceStep struct{ p Invoicing }

func (invoiceStep) Name() string          { return StepInvoice }
func (invoiceStep) Idempotent() bool      { return false }
func (invoiceStep) Reads() []string       { return []string{StepShipping} }
func (invoiceStep) AlwaysReconcile() bool { return true }
func (s invoiceStep) Run(ctx context.Context, in Input) (any, error) {
	var sh integrations.Shipment
	if err := in.Result(StepShipping, &sh); err != nil {
		return nil, integrations.Permanentf("processor", StepInvoice, "%v", err)
	}
	return s.p.CreateInvoice(ctx, in.Order, sh)
}
func (s invoiceStep) Lookup(in Input) (func(context.Context) (any, bool, error), string) {
	number := s.p.InvoiceNumber(in.Order)
	return func(ctx context.Context) (any, bool, error) {
		return s.p.FindInvoice(ctx, number)
	}, "invoice " + number
}

// emailStep sends the confirmation: not idempotent, reconciled by its
// Message-Id when the mailer can look messages up.
type emailStep struct{ p Mailer }

func (emailStep) Name() string     { return StepEmail }
func (emailStep) Idempotent() bool { return false }
func (emailStep) Reads() []string  { return []string{StepShipping, StepInvoice} }
func (s emailStep) Run(ctx context.Context, in Input) (any, error) {
	var sh integrations.Shipment
	var inv integrations.Invoice
	if err := errors.Join(in.Result(StepShipping, &sh), in.Result(StepInvoice, &inv)); err != nil {
		return nil, integrations.Permanentf("processor", StepEmail, "%v", err)
	}
	return s.p.SendConfirmation(ctx, in.Order, sh, inv)
}
func (s emailStep) Lookup(in Input) (func(context.Context) (any, bool, error), string) {
	f, ok := s.p.(MessageFinder)
	if !ok {
		return nil, ""
	}
	o := in.Order
	return func(ctx context.Context) (any, bool, error) {
		return f.FindMessage(ctx, o)
	}, "confirmation email"
}
