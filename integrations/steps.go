package integrations

// Names of the built-in steps of the processor's chain, in their default
// order. They are the names used in the order state, metrics, dead-letter
// headers, the simulator's fault control and stats, the benchmarks and the
// chaos tests: every one of them reads them from here. A webhook step is
// named by its configuration (WebhookStepPrefix + name).
const (
	StepDetails       = "details"
	StepCRM           = "crm"
	StepProductionLog = "production_log"
	StepShipping      = "shipping"
	StepInvoice       = "invoice"
	StepEmail         = "email"
)

// WebhookStepPrefix starts the name of every outbound webhook step
// ("webhook:erp").
const WebhookStepPrefix = "webhook:"

// BuiltinSteps are the built-in steps in their default order.
func BuiltinSteps() []string {
	return []string{StepDetails, StepCRM, StepProductionLog, StepShipping, StepInvoice, StepEmail}
}
