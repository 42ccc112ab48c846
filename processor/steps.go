package processor

import (
	"context"

	"github.com/orderflow/orderflow/integrations"
)

// Names of the built-in steps (defined once, in package integrations). They
// are also the names used in metrics, the order state, dead-letter headers
// and the simulator's fault control.
const (
	StepDetails       = integrations.StepDetails
	StepCRM           = integrations.StepCRM
	StepProductionLog = integrations.StepProductionLog
	StepShipping      = integrations.StepShipping
	StepInvoice       = integrations.StepInvoice
	StepEmail         = integrations.StepEmail
)

// Chain is the built-in steps in their default order.
var Chain = integrations.BuiltinSteps()

// The interfaces below are what the processor needs from providers; each is
// implemented by a client under integrations/ and can be swapped for another
// provider's (Salesforce for Zoho, DHL for PostNord, ...).

// OrderDetails reads the paid order from the payment provider.
type OrderDetails interface {
	// OrderDetails returns the order for a PaymentIntent id (pi_...) or, when
	// there is none, a Checkout Session id (cs_...).
	OrderDetails(ctx context.Context, orderID string) (integrations.Order, error)
}

// CRM records the customer and the sale.
type CRM interface {
	// UpsertContactAndDeal creates or updates the contact (by email) and the
	// deal (by the order's key); calling it twice changes nothing.
	UpsertContactAndDeal(ctx context.Context, o integrations.Order) (integrations.CRMResult, error)
}

// ProductionLog keeps one row per order for the people who make the goods.
type ProductionLog interface {
	// UpsertOrder creates or updates the order's row; completedSteps is
	// recorded in the row's status field.
	UpsertOrder(ctx context.Context, o integrations.Order, completedSteps []string) (integrations.ProductionLogResult, error)
}

// ProgressReporter is implemented by a ProductionLog that shows each
// order's progress as it happens (Airtable's status field). After every
// state write of an order the processor hands it the order's progress; the
// call must not block (queue, coalesce, drop if need be): it runs on the
// order's goroutine between steps, and nothing waits for its outcome.
type ProgressReporter interface {
	ReportProgress(p integrations.Progress)
}

// Shipping books a shipment and stores its label. Booking is not idempotent
// at the provider: a second call books a second shipment.
type Shipping interface {
	CreateShipment(ctx context.Context, o integrations.Order) (integrations.Shipment, error)
}

// ShipmentFinder is implemented by a Shipping provider that can look up
// the order's shipment by the reference CreateShipment sends with it, so a
// booking interrupted by a crash is not made twice. found is false when the
// provider shows none (yet: a provider may show a booking only after a
// delay; see Config.LookupDelay).
type ShipmentFinder interface {
	FindShipment(ctx context.Context, o integrations.Order) (s integrations.Shipment, found bool, err error)
}

// Invoicing creates the VAT invoice. Creation is not idempotent, but an
// invoice can be looked up by our invoice number to reconcile.
type Invoicing interface {
	CreateInvoice(ctx context.Context, o integrations.Order, s integrations.Shipment) (integrations.Invoice, error)
	// FindInvoice looks up an invoice by our number; found is false when the
	// provider has none.
	FindInvoice(ctx context.Context, number string) (inv integrations.Invoice, found bool, err error)
	// InvoiceNumber is the number CreateInvoice will use for the order.
	InvoiceNumber(o integrations.Order) string
}

// Mailer sends the confirmation email.
type Mailer interface {
	SendConfirmation(ctx context.Context, o integrations.Order, s integrations.Shipment, inv integrations.Invoice) (integrations.Message, error)
}

// MessageFinder is implemented by a Mailer that can look up whether the
// order's confirmation was already accepted (by its deterministic
// Message-Id), so a call interrupted by a crash is not made twice.
type MessageFinder interface {
	FindMessage(ctx context.Context, o integrations.Order) (msg integrations.Message, found bool, err error)
}

// Alerter tells a human. Implementations batch bursts.
type Alerter interface {
	Alert(ctx context.Context, a integrations.Alert) error
}
