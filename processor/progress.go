package processor

import "github.com/orderflow/orderflow/integrations"

// reportProgress tells the production log, when it is on and can show
// progress (ProgressReporter), where the order stands after a state write
// has been acknowledged: its status, the steps done, and for a
// dead-lettered order the step and the reason. The reporter must not
// block; what it does with the report never affects the chain. The
// reports are the production log's, so they wait for the gates listed
// before it as its step does: nothing is reported of an order while such
// a gate has not passed (nor of one a gate refused).
func (p *Processor) reportProgress(st *State) {
	if p.prov.ProductionLog == nil {
		return
	}
	for _, g := range p.progressGates {
		if ss := st.Steps[g]; ss == nil || !ss.Done {
			return
		}
	}
	r, ok := p.prov.ProductionLog.(ProgressReporter)
	if !ok {
		return
	}
	pr := integrations.Progress{
		OrderID:        st.OrderID,
		Order:          st.Order,
		Status:         string(st.Status),
		CompletedSteps: p.completedSteps(st),
		At:             st.UpdatedAt,
	}
	if st.Status == StatusDeadLettered || st.Status == StatusParked {
		if st.DeadLetter != nil {
			pr.FailedStep = st.DeadLetter.Step
		}
		pr.Failure = st.LastError
	}
	r.ReportProgress(pr)
}
