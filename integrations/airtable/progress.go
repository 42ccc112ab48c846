package airtable

import (
	"slices"
	"strings"
	"time"

	"github.com/orderflow/orderflow/integrations"
)

// DefaultMaxProgress bounds the orders whose progress reports wait to be
// sent (Config.MaxProgress).
const DefaultMaxProgress = 10000

// ReportProgress queues the order's row with its progress (implementing
// processor.ProgressReporter) and returns at once. Reports of one order
// coalesce: a queued report is replaced by the newer one (the latest
// wins), and a production-log call for the order supersedes it. Reports
// go in the room that waiting UpsertOrder calls leave in a batch, within
// the same request rate, so they never delay the chain. When MaxProgress
// orders already wait, a report for another order is dropped (and
// counted); its next report, or the order's next step, writes the row.
func (c *Client) ReportProgress(p integrations.Progress) {
	if p.OrderID == "" {
		return
	}
	fields := c.progressFields(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if cl, ok := c.progressBy[p.OrderID]; ok && cl.queued {
		cl.fields = fields // the latest wins; the place in the queue stays
		return
	}
	if len(c.progressBy) >= c.maxProgress {
		c.progressDropped++
		if now := time.Now(); now.Sub(c.progressWarned) > time.Minute {
			c.progressWarned = now
			c.log.Warn("airtable: progress reports dropped: too many orders waiting for a turn at the base",
				"waiting", len(c.progressBy), "dropped_total", c.progressDropped)
		}
		return
	}
	cl := &call{orderID: p.OrderID, fields: fields, progress: true, queued: true, gone: true, done: make(chan callResult, 1)}
	c.progressBy[p.OrderID] = cl
	c.progress = append(c.progress, cl)
	c.startSenderLocked()
}

// ProgressDropped counts the progress reports dropped because MaxProgress
// orders were waiting.
func (c *Client) ProgressDropped() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.progressDropped
}

// removeProgressLocked takes a queued report off the queue.
func (c *Client) removeProgressLocked(cl *call) {
	if i := slices.Index(c.progress, cl); i >= 0 {
		c.progress = slices.Delete(c.progress, i, i+1)
	}
	delete(c.progressBy, cl.orderID)
	cl.queued = false
}

// progressFailedLocked logs a report Airtable did not take, at most once a
// minute; the order's next report or step writes the row again.
func (c *Client) progressFailedLocked(cl *call, err error) {
	c.progressFailed++
	if now := time.Now(); now.Sub(c.progressFailWarned) > time.Minute {
		c.progressFailWarned = now
		c.log.Warn("airtable: progress report not written", "order_id", cl.orderID, "failed_total", c.progressFailed,
			"err", integrations.RedactValues(err.Error(), rowValues(cl.fields), integrations.MaskedPersonal))
	}
}

// rowValues are the text values of a row (the customer's name among them)
// and their words of four letters or more, as Airtable's error may quote
// them ("Cannot parse value …"): the log carries ids only.
func rowValues(fields map[string]any) []string {
	var out []string
	for _, v := range fields {
		s, ok := v.(string)
		if !ok || len(s) < 4 {
			continue
		}
		out = append(out, s)
		for _, w := range strings.Fields(s) {
			if len([]rune(w)) >= 4 {
				out = append(out, w)
			}
		}
	}
	return out
}

// progressFields is the row of a progress report: the order's fields when
// the order is known (after the details step), with the status.
func (c *Client) progressFields(p integrations.Progress) map[string]any {
	if p.Order != nil {
		return c.rowFields(*p.Order, p)
	}
	f := c.cfg.Fields
	m := map[string]any{f.OrderID: p.OrderID}
	if f.OrderNumber != "-" {
		m[f.OrderNumber] = integrations.OrderNumber(p.OrderID)
	}
	c.putStatus(m, p)
	return m
}

// putStatus writes the status field (and the failure field when there is
// one) for a progress report:
//
//	details, crm, production_log                      in progress
//	details, crm, …, email; completed                 completed
//	details, crm; failed at shipping: <reason>        dead-lettered (the
//	                                                  reason goes to the
//	                                                  failure field when set)
//	details; refunded                                  stopped by a refund
//
// As a list (StatusAsList) the steps are followed by "completed",
// "failed: <step>", "refunded", "awaiting payment" or "payment failed".
func (c *Client) putStatus(m map[string]any, p integrations.Progress) {
	f := c.cfg.Fields
	steps := slices.Clone(p.CompletedSteps)
	if steps == nil {
		steps = []string{}
	}
	var tail, reason string
	switch p.Status {
	case "completed":
		tail = "completed"
	case "dead_lettered", "parked":
		tail = "failed at " + p.FailedStep
		reason = cutText(p.Failure, 300)
		if f.Failure != "-" {
			m[f.Failure] = strings.TrimPrefix(p.FailedStep+": "+reason, ": ")
		}
	case "refunded":
		tail = "refunded"
	case "awaiting_payment":
		tail = "awaiting payment"
	case "payment_failed":
		tail = "payment failed"
	default:
		if f.Failure != "-" {
			m[f.Failure] = "" // a replayed order is no longer failing
		}
	}
	if f.Status == "-" {
		return
	}
	if c.cfg.StatusAsList {
		if tail != "" {
			steps = append(steps, strings.Replace(tail, "failed at ", "failed: ", 1))
		}
		m[f.Status] = steps
		return
	}
	s := strings.Join(steps, ", ")
	if tail != "" {
		if reason != "" && f.Failure == "-" {
			tail += ": " + reason
		}
		if s != "" {
			s += "; "
		}
		s += tail
	}
	m[f.Status] = s
}

func cutText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
