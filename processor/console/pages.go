package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/orderflow/orderflow/integrations"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/dlq"
	"github.com/orderflow/orderflow/topics"
)

// --- overview ---

func (s *Server) overviewData(ctx context.Context) Overview {
	if s.cfg.Observer == nil {
		return NewObserver(s.cfg.Index, s.cfg.Follower, nil, s.cfg.Names, "", nil).Overview(ctx)
	}
	return s.cfg.Observer.Overview(ctx)
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.render(w, r, rc, http.StatusOK, "overview", "Overview", "overview", s.overviewData(r.Context()))
}

func (s *Server) apiOverview(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	writeJSON(w, http.StatusOK, s.overviewData(r.Context()))
}

// IndexState is the answer of GET /api/index: how far the index is.
type IndexState struct {
	Behind int64            `json:"behind"`
	Known  bool             `json:"known"`  // the end offsets have been listed
	Orders map[string]int64 `json:"orders"` // what each status filter lists
}

func (s *Server) apiIndex(w http.ResponseWriter, _ *http.Request, _ *reqCtx) {
	st := IndexState{Orders: FilterCounts(s.cfg.Index.Counts())}
	if s.cfg.Follower != nil {
		p := s.cfg.Follower.Progress()
		st.Behind, st.Known = p.Behind, p.Known
	}
	writeJSON(w, http.StatusOK, st)
}

// --- orders ---

// ordersPage is the orders list's data.
type ordersPage struct {
	Query        Query
	Since, Until string
	Term, Handle string
	Orders       []Summary
	Next         string
	NextURL      string
	// Ambiguous is the OF- number the orders listed share (ids that
	// differ only in case have one number).
	Ambiguous string
}

func (p ordersPage) HasStatus(s string) bool { return slices.Contains(p.Query.Statuses, s) }
func (p ordersPage) HasStep(s string) bool   { return slices.Contains(p.Query.Steps, s) }

// ParseQuery reads the list filters of a request: status and step
// (repeated or comma-separated), since and until.
func ParseQuery(v url.Values, now time.Time) (Query, error) {
	var q Query
	q.Statuses = listValues(v["status"])
	q.Steps = listValues(v["step"])
	var err error
	if q.Since, err = dlq.ParseTime(v.Get("since"), now); err != nil {
		return q, fmt.Errorf("%w: since: %s", ErrBadQuery, reason(err))
	}
	if q.Until, err = dlq.ParseTime(v.Get("until"), now); err != nil {
		return q, fmt.Errorf("%w: until: %s", ErrBadQuery, reason(err))
	}
	return q, q.Validate()
}

func listValues(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

func (s *Server) orders(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	v := r.URL.Query()
	q, err := ParseQuery(v, s.cfg.Now())
	if err != nil {
		s.fail(w, r, rc, http.StatusBadRequest, "Bad filter", reason(err))
		return
	}
	p := ordersPage{Query: q, Since: v.Get("since"), Until: v.Get("until")}
	if h := v.Get("s"); h != "" {
		term, ok := "", false
		if rc.sess != nil {
			term, ok = s.sessions.term(rc.sess, h)
		}
		if !ok {
			s.fail(w, r, rc, http.StatusBadRequest, "Search expired", "This search is no longer known (searches are kept for the session): search again.")
			return
		}
		p.Term, p.Handle, q.Term = term, h, term
	}
	page, err := s.cfg.Index.List(q, v.Get("cursor"), 50)
	if errors.Is(err, ErrBadQuery) {
		s.fail(w, r, rc, http.StatusBadRequest, "Bad filter", reason(err))
		return
	}
	if err != nil {
		s.fail(w, r, rc, http.StatusInternalServerError, "Index unreadable", err.Error())
		return
	}
	p.Orders, p.Next = page.Orders, page.Next
	if p.Next != "" {
		nv := url.Values{}
		for k, vs := range v {
			if k != "cursor" {
				nv[k] = vs
			}
		}
		nv.Set("cursor", p.Next)
		p.NextURL = "/orders?" + nv.Encode()
	}
	if rc.masked() {
		for i := range p.Orders {
			maskSummary(&p.Orders[i])
		}
	}
	s.render(w, r, rc, http.StatusOK, "orders", "Orders", "orders", p)
}

// search keeps the term in the session and redirects to a list naming it
// by an opaque handle, so no email or other search term is in a URL.
func (s *Server) search(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	term := strings.TrimSpace(r.PostFormValue("term"))
	if len(term) > MaxTerm {
		s.fail(w, r, rc, http.StatusBadRequest, "Bad search", fmt.Sprintf("The search term is longer than %d bytes.", MaxTerm))
		return
	}
	v := url.Values{}
	for _, k := range []string{"status", "step"} {
		for _, x := range r.PostForm[k] {
			if x != "" {
				v.Add(k, x)
			}
		}
	}
	if term != "" {
		if rc.sess == nil {
			s.fail(w, r, rc, http.StatusBadRequest, "Bad search", "Searching from the page needs a session; use POST /api/orders/search with a token.")
			return
		}
		v.Set("s", s.sessions.search(rc.sess, term))
	}
	http.Redirect(w, r, "/orders?"+v.Encode(), http.StatusSeeOther)
}

// maskSummary hides customer data from viewers.
func maskSummary(s *Summary) {
	if s.Email != "" {
		s.Email = dlq.Masked
	}
	if s.Name != "" {
		s.Name = dlq.Masked
	}
}

// --- one order ---

// stepView is one step on the order page.
type stepView struct {
	Name, Status, Class   string
	Attempts              int
	FirstFailure          *time.Time
	LastFailure           *time.Time
	DoneAt                *time.Time
	Result                string
	Tracking, TrackingURL string
	Label, Customs        bool
	LastError             string
}

type orderPage struct {
	Summary *Summary
	State   *processor.State
	Ship    string
	Steps   []stepView
	Events  []EventInfo
	Letters []Letter
	Next    string
}

func (s *Server) loadOrder(w http.ResponseWriter, r *http.Request, rc *reqCtx) (*Summary, *processor.State, bool) {
	id := r.PathValue("id")
	sum, err := s.cfg.Index.Get(id)
	if errors.Is(err, ErrNotFound) && strings.HasPrefix(strings.ToUpper(id), "OF-") {
		// An OF- number: find the order it names, or list the orders it
		// names (as the API and the CLI refuse it) to pick one by id.
		found, ferr := s.numbered(id, 50)
		switch {
		case ferr != nil:
			err = ferr
		case len(found) == 1:
			http.Redirect(w, r, "/orders/"+url.PathEscape(found[0].ID)+strings.TrimPrefix(r.URL.Path, "/orders/"+id), http.StatusSeeOther)
			return nil, nil, false
		case len(found) > 1:
			if rc.masked() {
				for i := range found {
					maskSummary(&found[i])
				}
			}
			s.render(w, r, rc, http.StatusMultipleChoices, "orders", "Orders numbered "+id, "orders", ordersPage{Term: id, Orders: found, Ambiguous: id})
			return nil, nil, false
		}
	}
	if errors.Is(err, ErrNotFound) {
		s.fail(w, r, rc, http.StatusNotFound, "Order not found", fmt.Sprintf("No order %q in the index: check the id (an order appears once a processor has written its state).", id))
		return nil, nil, false
	}
	if err != nil {
		s.fail(w, r, rc, http.StatusInternalServerError, "Index unreadable", err.Error())
		return nil, nil, false
	}
	if s.cfg.States == nil {
		s.fail(w, r, rc, http.StatusServiceUnavailable, "State unavailable", "This console cannot read orders.state.")
		return nil, nil, false
	}
	st, err := s.cfg.States.StateAt(r.Context(), sum.ID, sum.StatePartition, sum.StateOffset)
	if err != nil {
		s.fail(w, r, rc, http.StatusBadGateway, "State unreadable", fmt.Sprintf("The state of order %s could not be read from orders.state: %v", sum.ID, err))
		return nil, nil, false
	}
	return sum, st, true
}

func (s *Server) order(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	sum, st, ok := s.loadOrder(w, r, rc)
	if !ok {
		return
	}
	p := orderPage{Summary: sum, State: st}
	p.Events, _ = s.cfg.Index.Events(sum.ID)
	infos, _ := s.cfg.Index.LettersOf(sum.ID)
	for _, l := range infos {
		if st.Status == processor.StatusErased {
			// A provider's reason may quote what was erased.
			l.Error = "(not shown: the order was erased)"
		}
		p.Letters = append(p.Letters, Letter{LetterInfo: l, Status: dlq.LetterStatus(l.Source(), l.EventType, st)})
	}
	if o := st.Order; o != nil && o.Shipping.Country != "" {
		p.Ship = strings.Join(nonEmpty(o.Shipping.Name, o.Shipping.Line1, o.Shipping.Line2, o.Shipping.PostalCode+" "+o.Shipping.City, o.Shipping.Country), ", ")
		if rc.masked() {
			p.Ship = dlq.Masked + ", " + o.Shipping.Country
		}
	}
	if st.Status != processor.StatusErased {
		// An erasure marker keeps no steps: they would all read pending.
		for _, name := range st.StepNames() {
			p.Steps = append(p.Steps, s.stepView(name, st, rc))
		}
	}
	p.Next = nextAction(sum, st, p.Letters)
	if rc.masked() {
		c := *sum
		maskSummary(&c)
		p.Summary = &c
	}
	s.render(w, r, rc, http.StatusOK, "order", "Order "+sum.ID, "orders", p)
}

func nonEmpty(xs ...string) []string {
	var out []string
	for _, x := range xs {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func (s *Server) stepView(name string, st *processor.State, rc *reqCtx) stepView {
	v := stepView{Name: name, Status: "pending", Class: "pending"}
	ss := st.Steps[name]
	if ss == nil {
		return v
	}
	v.Attempts, v.FirstFailure, v.LastFailure, v.DoneAt, v.LastError = ss.Attempts, ss.FirstFailure, ss.LastFailure, ss.DoneAt, ss.LastError
	switch {
	case ss.Skipped:
		v.Status, v.Class = "skipped (turned off)", "pending"
	case ss.Done:
		v.Status, v.Class = "done", "completed"
		if name == processor.StepDetails && st.Order != nil {
			v.Result = fmt.Sprintf("order %s, %s, %d item(s)", st.Order.Number, integrations.FormatMoney(st.Order.AmountTotal, st.Order.Currency), len(st.Order.Items))
		} else {
			v.Result = dlq.StepResult(name, ss.Result)
		}
	case ss.HeldUntil != nil:
		v.Status, v.Class = "held until "+ss.HeldUntil.UTC().Format(time.RFC3339)+" (provider quota used up; no attempt spent)", "waiting"
		v.LastError = ss.HeldReason
	case ss.Intent != nil:
		v.Status, v.Class = "in doubt: call started "+ss.Intent.UTC().Format(time.RFC3339)+", no result recorded", "waiting"
	case ss.CircuitOpen != nil:
		v.Status, v.Class = "waiting on the open circuit since "+ss.CircuitOpen.UTC().Format(time.RFC3339)+" (its provider fails for every order)", "waiting"
	case ss.Attempts > 0:
		v.Status, v.Class = "failing", "waiting"
	}
	if name == processor.StepShipping && len(ss.Result) > 0 {
		var sh integrations.Shipment
		if json.Unmarshal(ss.Result, &sh) == nil {
			v.Tracking = sh.TrackingNumber
			if u, err := url.Parse(sh.TrackingURL); err == nil && (u.Scheme == "https" || u.Scheme == "http") {
				v.TrackingURL = u.String()
			}
			v.Label = rc.user.Operator() && s.labelPath(st.OrderID, sh.LabelLocation) != ""
			v.Customs = rc.user.Operator() && s.labelPath(st.OrderID, sh.CustomsLocation) != ""
			if ss.Done {
				v.Result = "shipment " + sh.ShipmentID + ", tracking " + sh.TrackingNumber
			}
		}
	}
	return v
}

// nextAction tells the person what to do about the order.
func nextAction(sum *Summary, st *processor.State, letters []Letter) string {
	dups := sum.PossibleDuplicates()
	dupNote := ""
	if len(dups) > 0 {
		dupNote = " It is flagged possible_duplicate for " + strings.Join(dups, ", ") + ": a call may have happened twice after a crash; check the provider (for shipping, a second label) and cancel the extra one."
	}
	// What a refund leaves to a person comes first: the steps went on.
	switch {
	case slices.Contains(sum.Flags, processor.FlagRefundedAfterShipping):
		dupNote = " It was refunded in full after it shipped: stop or recall the shipment and credit the invoice by hand." + dupNote
	case slices.Contains(sum.Flags, processor.FlagPartiallyRefunded):
		dupNote = " Part of it was refunded (see the alerts for how much): credit that on the invoice by hand; the order went on." + dupNote
	}
	if slices.Contains(sum.Flags, processor.FlagDisputed) {
		dupNote = " The customer disputed the payment (a chargeback; see the alerts for the reason and the date the evidence is due): answer it in Stripe's Dashboard with the order's invoice and tracking." + dupNote
	}
	if slices.Contains(sum.Flags, processor.FlagRefundFailed) {
		dupNote = " A refund of it did not go through at Stripe (failed or canceled): the customer was not paid back; pay back another way." + dupNote
	}
	var open []string
	for _, l := range letters {
		if l.Status == dlq.LetterOpen {
			open = append(open, l.Source())
		}
	}
	switch sum.Status {
	case string(processor.StatusCompleted):
		if dupNote != "" {
			return "Every step is done." + dupNote
		}
		return "Nothing: every step is done."
	case StatusWaiting:
		ss := st.Steps[sum.Step]
		return fmt.Sprintf("Nothing yet: step %s failed %d time(s) (%s) and the processor retries it with backoff; while its provider fails for every order its circuit opens and orders wait. If the retries run out the order becomes a dead letter.%s",
			sum.Step, ss.Attempts, dlq.Cut(ss.LastError, 160), dupNote)
	case string(processor.StatusInProgress):
		return "Nothing: the processor is working on it (step " + sum.Step + ")." + dupNote
	case string(processor.StatusDeadLettered), string(processor.StatusParked):
		class := ""
		if st.DeadLetter != nil {
			class = st.DeadLetter.Class
		}
		what := "Read the error: a permanent failure means the provider rejected the request; fix the data or configuration first."
		if class == topics.ClassExhausted {
			what = "Retries ran out, typical of an outage: when the provider is back (its circuit on the overview),"
		}
		if len(open) == 0 {
			return what + " Its dead letters are all replayed; wait for the replay to finish." + dupNote
		}
		return what + " Then replay dead letter(s) " + strings.Join(open, ", ") + " from the Dead letters page (preview first). Finished steps are not repeated." + dupNote
	case string(processor.StatusRefunded):
		return "The order was refunded before shipping and the chain stopped: undo by hand what was done (CRM deal, production-log row)." + dupNote
	case string(processor.StatusAwaitingPayment):
		return "Nothing: the Checkout Session completed unpaid (a delayed payment method, or a card payment authorized to be captured later); the chain starts when the payment succeeds or is captured."
	case string(processor.StatusPaymentFailed):
		return "Nothing to undo: the payment awaited failed (a debit refused or returned) or was canceled (an authorization canceled or expired before capture), so nothing was sent to any provider. Contact the customer if the order should still go out; a new payment of it runs the chain."
	case string(processor.StatusErased):
		at := ""
		if st.ErasedAt != nil {
			at = " on " + st.ErasedAt.UTC().Format("2006-01-02 15:04:05Z")
		}
		return "Nothing: the order's data was erased" + at + ". Its state keeps no customer, amount or step results, the processor ignores its later events, and its dead letters are not replayed. What the providers hold (CRM, production log, carrier, invoice, email) was not erased, nor the order's records on the orders topic (7 days) and the dead-letter topic (30 days), nor a stored label or customs file: the erasure's row on the audit page names them."
	}
	return "Status " + sum.Status + ": see the steps below." + dupNote
}

// labelPath is the file of the order's label in the label folder, or ""
// when there is none to serve: only a file named for this order directly
// in the folder is served, whatever the location says.
func (s *Server) labelPath(orderID, location string) string {
	if s.cfg.LabelDir == "" || location == "" {
		return ""
	}
	name := location
	if u, err := url.Parse(location); err == nil && u.Scheme == "file" {
		name = u.Path
	}
	base := filepath.Base(filepath.FromSlash(name))
	if !strings.HasPrefix(base, orderID+"_") || !strings.HasSuffix(base, ".pdf") || strings.ContainsAny(base, `/\`) {
		return ""
	}
	p := filepath.Join(s.cfg.LabelDir, base)
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	return p
}

func (s *Server) label(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.shipmentDocument(w, r, rc, func(sh integrations.Shipment) string { return sh.LabelLocation }, "No label", "label")
}

// customs serves the customs declaration (CN23) of a parcel leaving the
// EU, as label serves the label.
func (s *Server) customs(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.shipmentDocument(w, r, rc, func(sh integrations.Shipment) string { return sh.CustomsLocation }, "No customs declaration", "customs declaration")
}

// shipmentDocument serves a PDF of the order's shipment from the label
// folder: the one at the location where picks from the shipment.
func (s *Server) shipmentDocument(w http.ResponseWriter, r *http.Request, rc *reqCtx, where func(integrations.Shipment) string, title, what string) {
	_, st, ok := s.loadOrder(w, r, rc)
	if !ok {
		return
	}
	var sh integrations.Shipment
	if ss := st.Steps[processor.StepShipping]; ss != nil && len(ss.Result) > 0 {
		_ = json.Unmarshal(ss.Result, &sh)
	}
	p := s.labelPath(st.OrderID, where(sh))
	if p == "" {
		s.fail(w, r, rc, http.StatusNotFound, title, "This order has no "+what+" in the console's label folder (--label-dir).")
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("Content-Disposition", `attachment; filename="`+filepath.Base(p)+`"`)
	http.ServeFile(w, r, p)
}

// erase erases the order's state through the shared implementation of
// `orderflow orders erase`, after the person typed the order id to confirm;
// its audit record is acknowledged before anything is written.
func (s *Server) erase(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	sum, st, ok := s.loadOrder(w, r, rc)
	if !ok {
		return
	}
	if strings.TrimSpace(r.PostFormValue("confirm")) != sum.ID {
		s.fail(w, r, rc, http.StatusBadRequest, "Not erased", "Type the order id to confirm the erasure; nothing was erased.")
		return
	}
	if s.cfg.Eraser == nil {
		s.fail(w, r, rc, http.StatusServiceUnavailable, "Erase unavailable", "This console has no Kafka producer for erasures.")
		return
	}
	start := topics.AuditRecord{ID: randomString(9), Actor: rc.user.Name, Role: rc.user.Role, Action: topics.AuditErase, Target: "order " + sum.ID, Outcome: topics.AuditStarted, Remote: rc.remote}
	if err := s.writeAudit(r.Context(), start); err != nil {
		s.fail(w, r, rc, http.StatusServiceUnavailable, "Audit log unavailable", "The audit record could not be written, so nothing was erased: "+err.Error())
		return
	}
	e, err := s.cfg.Eraser.Erase(r.Context(), sum.ID, st, sum.StatePartition, 30*time.Second)
	done := start
	done.At, done.Outcome = time.Time{}, topics.AuditOK
	switch {
	case err != nil:
		done.Outcome, done.Result = topics.AuditFailed, err.Error()
	case e.Already:
		done.Result = "already erased"
	default:
		// What is left, named as `orders erase` names it: the person who
		// erased reads it on the audit page (the label files' paths leave
		// the state with the erasure).
		done.Result = "erasure marker at " + e.Marker + "; not erased: " + dlq.NotErased(st, s.cfg.Names)
	}
	s.audit1(r.Context(), done)
	if err != nil {
		s.fail(w, r, rc, http.StatusBadGateway, "Erase not confirmed", err.Error())
		return
	}
	http.Redirect(w, r, "/orders/"+url.PathEscape(sum.ID), http.StatusSeeOther)
}

// --- dead letters ---

type letterForm struct {
	Order, Step, Class, Status, Since, Until string
}

type lettersPage struct {
	Form    letterForm
	Letters []Letter
	Total   int
	Rate    float64
}

// letterFilter reads the dead-letter filters (the same as `dlq list`):
// order (id or OF- number), step, class, since, until.
func (s *Server) letterFilter(f letterForm) (dlq.Filter, error) {
	var out dlq.Filter
	var err error
	if f.Order != "" {
		for _, o := range listValues([]string{f.Order}) {
			id, err := s.resolveOrder(o)
			if err != nil {
				return out, err
			}
			out.Orders = append(out.Orders, id)
		}
	}
	out.Steps = listValues([]string{f.Step})
	out.Classes = listValues([]string{f.Class})
	now := s.cfg.Now()
	if out.Since, err = dlq.ParseTime(f.Since, now); err != nil {
		return out, fmt.Errorf("%w: since: %s", ErrBadQuery, reason(err))
	}
	if out.Until, err = dlq.ParseTime(f.Until, now); err != nil {
		return out, fmt.Errorf("%w: until: %s", ErrBadQuery, reason(err))
	}
	return out, out.Validate()
}

// resolveOrder turns an OF- number into the order id it names.
func (s *Server) resolveOrder(ref string) (string, error) {
	if !strings.HasPrefix(strings.ToUpper(ref), "OF-") {
		return ref, nil
	}
	found, err := s.numbered(ref, 3)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, f := range found {
		ids = append(ids, f.ID)
	}
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("%w: no order has the number %s", ErrBadQuery, ref)
	case 1:
		return ids[0], nil
	}
	return "", fmt.Errorf("%w: %s names several orders (%s): give the order id", ErrBadQuery, ref, strings.Join(ids, ", "))
}

// numbered returns the orders (at most limit) whose OF- number is ref, in
// any case.
func (s *Server) numbered(ref string, limit int) ([]Summary, error) {
	found, err := s.cfg.Index.Search(Query{Term: ref}, limit)
	if err != nil {
		return nil, err
	}
	var out []Summary
	for _, f := range found {
		if strings.EqualFold(f.Number, ref) {
			out = append(out, f)
		}
	}
	return out, nil
}

func (s *Server) letters(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	v := r.URL.Query()
	form := letterForm{Order: v.Get("order"), Step: v.Get("step"), Class: v.Get("class"), Status: v.Get("status"), Since: v.Get("since"), Until: v.Get("until")}
	f, err := s.letterFilter(form)
	if err != nil {
		s.fail(w, r, rc, http.StatusBadRequest, "Bad filter", reason(err))
		return
	}
	statuses := listValues([]string{form.Status})
	for _, st := range statuses {
		if !slices.Contains(dlq.LetterStatuses, st) {
			s.fail(w, r, rc, http.StatusBadRequest, "Bad filter", fmt.Sprintf("unknown status %q (want one of %s)", st, strings.Join(dlq.LetterStatuses, ", ")))
			return
		}
	}
	ls, total, err := s.cfg.Index.Letters(f, statuses, 500)
	if err != nil {
		s.fail(w, r, rc, http.StatusInternalServerError, "Index unreadable", err.Error())
		return
	}
	s.render(w, r, rc, http.StatusOK, "dlq", "Dead letters", "dlq", lettersPage{Form: form, Letters: ls, Total: total, Rate: s.cfg.DefaultRate})
}

// replayRequest reads the replay form: the dead letters picked (source),
// or every one the filter matches (all_matching with the f_* fields), the
// rate, and preview or replay.
func (s *Server) replayRequest(r *http.Request) (dlq.ReplayRequest, string, error) {
	var req dlq.ReplayRequest
	action := r.PostFormValue("action")
	if action != "preview" && action != "replay" {
		return req, "", fmt.Errorf("%w: action %q: want preview or replay", ErrBadQuery, action)
	}
	rate := s.cfg.DefaultRate
	if v := strings.TrimSpace(r.PostFormValue("rate")); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || f <= 0 || f > 1000 {
			return req, "", fmt.Errorf("%w: rate %q: want a number of records per second above 0 and at most 1000", ErrBadQuery, v)
		}
		rate = f
	}
	req.Rate, req.DryRun = rate, action == "preview"
	if r.PostFormValue("all_matching") == "1" {
		f, err := s.letterFilter(letterForm{Order: r.PostFormValue("f_order"), Step: r.PostFormValue("f_step"), Class: r.PostFormValue("f_class"),
			Since: r.PostFormValue("f_since"), Until: r.PostFormValue("f_until")})
		if err != nil {
			return req, "", err
		}
		req.Filter, req.All = f, f.Empty()
		return req, action, nil
	}
	srcs := listValues(r.PostForm["source"])
	if len(srcs) == 0 {
		return req, "", fmt.Errorf("%w: select at least one dead letter (or every one the filter matches)", ErrBadQuery)
	}
	if len(srcs) > 10000 {
		return req, "", fmt.Errorf("%w: at most 10000 dead letters at once", ErrBadQuery)
	}
	req.Filter.Sources = srcs
	if err := req.Filter.Validate(); err != nil {
		return req, "", err
	}
	return req, action, nil
}

type previewPage struct {
	Result dlq.ReplayResult
	Orders string
	Rate   float64
}

func (s *Server) replay(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	req, action, err := s.replayRequest(r)
	if err != nil {
		s.fail(w, r, rc, http.StatusBadRequest, "Bad replay", reason(err))
		return
	}
	if s.cfg.Replayer == nil {
		s.fail(w, r, rc, http.StatusServiceUnavailable, "Replay unavailable", "This console has no Kafka producer for replays.")
		return
	}
	target := describe(req)
	if action == "preview" {
		res, err := s.cfg.Replayer.Run(r.Context(), req)
		a := topics.AuditRecord{Actor: rc.user.Name, Role: rc.user.Role, Action: topics.AuditReplay, DryRun: true, Target: target, Outcome: topics.AuditOK, Remote: rc.remote,
			Result: fmt.Sprintf("would replay %d, skip %d", res.Replay, res.Skipped())}
		if err != nil {
			a.Outcome, a.Result = topics.AuditFailed, err.Error()
		} else if missing := absentSources(req, res); len(missing) > 0 {
			// A pick of nothing is refused, as a bad form is, and not audited.
			s.fail(w, r, rc, http.StatusNotFound, "No such dead letter", fmt.Sprintf("no dead letter at %s on %s", strings.Join(missing, ", "), s.cfg.Names.DLQ))
			return
		}
		s.audit1(r.Context(), a)
		if err != nil {
			s.fail(w, r, rc, replayStatus(err), "Preview failed", reason(err))
			return
		}
		s.render(w, r, rc, http.StatusOK, "preview", "Replay preview", "dlq", previewPage{Result: res, Orders: s.cfg.Names.Orders, Rate: req.Rate})
		return
	}
	// A real replay: its audit record is written, and acknowledged, before
	// anything is sent.
	j := &job{st: jobView{ID: randomString(9), By: rc.user.Name, Started: s.cfg.Now(), Rate: req.Rate}}
	start := topics.AuditRecord{ID: j.st.ID, Actor: rc.user.Name, Role: rc.user.Role, Action: topics.AuditReplay, Target: target, Outcome: topics.AuditStarted, Remote: rc.remote}
	if err := s.writeAudit(r.Context(), start); err != nil {
		s.fail(w, r, rc, http.StatusServiceUnavailable, "Audit log unavailable", "The audit record could not be written, so nothing was replayed: "+err.Error())
		return
	}
	s.jobsMu.Lock()
	s.jobs[j.st.ID] = j
	s.jobsMu.Unlock()
	req.Progress = func(p dlq.Progress) { j.progress(p) }
	go func() {
		ctx := context.Background()
		res, err := s.cfg.Replayer.Run(ctx, req)
		j.finish(res, err)
		done := start
		done.At, done.Outcome = time.Time{}, topics.AuditOK
		done.Result = fmt.Sprintf("replayed %d, skipped %d (%s), failed %d",
			res.Summary.Replayed, res.Summary.Skipped(), res.Summary.SkipText(), res.Summary.Failed)
		if err != nil {
			done.Outcome, done.Result = topics.AuditFailed, done.Result+": "+err.Error()
		}
		s.audit1(ctx, done)
	}()
	http.Redirect(w, r, "/dlq/jobs/"+j.st.ID, http.StatusSeeOther)
}

// absentSources are the dead letters req picks one by one that the
// replay's plan does not have: there are none at those partition/offsets.
func absentSources(req dlq.ReplayRequest, res dlq.ReplayResult) []string {
	var out []string
	for _, src := range req.Filter.Sources {
		p, o, err := dlq.ParseSource(src)
		if err != nil {
			continue // refused by Validate before
		}
		if !slices.ContainsFunc(res.Plan, func(d dlq.Decision) bool { return d.Partition == p && d.Offset == o }) {
			out = append(out, topics.Source(p, o))
		}
	}
	return out
}

func replayStatus(err error) int {
	if errors.Is(err, dlq.ErrBadFilter) || errors.Is(err, dlq.ErrNoSelection) {
		return http.StatusBadRequest
	}
	return http.StatusBadGateway
}

// describe names what a replay selects, by ids only.
func describe(req dlq.ReplayRequest) string {
	f := req.Filter
	if req.All {
		return "every dead letter"
	}
	var parts []string
	if len(f.Sources) > 0 {
		parts = append(parts, "dead letters "+strings.Join(f.Sources, " "))
	}
	if len(f.Orders) > 0 {
		parts = append(parts, "orders "+strings.Join(f.Orders, " "))
	}
	if len(f.Steps) > 0 {
		parts = append(parts, "steps "+strings.Join(f.Steps, ","))
	}
	if len(f.Classes) > 0 {
		parts = append(parts, "classes "+strings.Join(f.Classes, ","))
	}
	if !f.Since.IsZero() {
		parts = append(parts, "since "+f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		parts = append(parts, "until "+f.Until.UTC().Format(time.RFC3339))
	}
	return strings.Join(parts, "; ") + fmt.Sprintf(" at %g/s", req.Rate)
}

// job is a replay running in the background.
type job struct {
	mu sync.Mutex
	st jobView
}

// jobView is what the job page shows.
type jobView struct {
	ID       string
	By       string
	Started  time.Time
	Rate     float64
	Done     int
	Total    int
	Finished bool
	Err      string
	Summary  dlq.Summary
	Outcomes []dlq.Outcome
}

func (j *job) progress(p dlq.Progress) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.st.Done, j.st.Total = p.Done, p.Total
}

func (j *job) finish(res dlq.ReplayResult, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.st.Finished, j.st.Summary, j.st.Outcomes, j.st.Total = true, res.Summary, res.Outcomes, res.Replay
	j.st.Done = res.Summary.Replayed
	if err != nil {
		j.st.Err = err.Error()
	}
}

func (j *job) snapshot() jobView {
	j.mu.Lock()
	defer j.mu.Unlock()
	v := j.st
	v.Outcomes = slices.Clone(v.Outcomes)
	return v
}

func (s *Server) jobPage(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.jobsMu.Lock()
	j, ok := s.jobs[r.PathValue("id")]
	s.jobsMu.Unlock()
	if !ok {
		s.fail(w, r, rc, http.StatusNotFound, "Replay not found", "No replay with this id since the console started; its record is on the audit page.")
		return
	}
	snap := j.snapshot()
	s.render(w, r, rc, http.StatusOK, "job", "Replay", "dlq", &snap)
}

// --- audit ---

type auditPage struct {
	Records []topics.AuditRecord
	Topic   string
	Days    int
	Missing string
	// Older is the link to the next (older) page; Paged: this is not
	// the newest.
	Older string
	Paged bool
}

// auditPageSize is the audit records a page shows.
const auditPageSize = 100

func (s *Server) audit(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	cursor := r.URL.Query().Get("cursor")
	recs, next, err := s.cfg.Index.AuditPage(cursor, auditPageSize)
	if errors.Is(err, ErrBadQuery) {
		s.fail(w, r, rc, http.StatusBadRequest, "Bad page", reason(err))
		return
	}
	if err != nil {
		s.fail(w, r, rc, http.StatusInternalServerError, "Index unreadable", err.Error())
		return
	}
	p := auditPage{Records: recs, Topic: s.cfg.Names.Audit, Days: topics.AuditRetentionDays, Paged: cursor != ""}
	if next != "" {
		p.Older = "/audit?" + url.Values{"cursor": {next}}.Encode()
	}
	if s.cfg.Follower != nil && slices.Contains(s.cfg.Follower.layout.Missing, s.cfg.Names.Audit) {
		create := s.cfg.CreateTopics
		if create == "" {
			create = "orderflow topics create"
		}
		p.Missing = "The topic " + s.cfg.Names.Audit + " does not exist: run '" + create + "'. Until then nothing is audited and replays are refused."
	}
	s.render(w, r, rc, http.StatusOK, "audit", "Audit", "audit", p)
}

// --- JSON API (for `orderflow orders list|search`) ---

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// APIPage is the answer of GET /api/orders and POST /api/orders/search.
type APIPage struct {
	Orders []Summary `json:"orders"`
	Next   string    `json:"next,omitempty"`
}

func (s *Server) apiOrders(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	v := r.URL.Query()
	q, err := ParseQuery(v, s.cfg.Now())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": reason(err)})
		return
	}
	limit := defaultAPILimit
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxAPILimit {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("limit %q: want a whole number from 1 to %d", l, maxAPILimit)})
			return
		}
		limit = n
	}
	s.apiList(w, rc, q, v.Get("cursor"), limit)
}

// The orders an API page holds unless the request says, and at most.
const (
	defaultAPILimit = 50
	maxAPILimit     = 1000
)

// SearchRequest is the body of POST /api/orders/search: the term stays out
// of the URL.
type SearchRequest struct {
	Term     string   `json:"term"`
	Statuses []string `json:"status,omitempty"`
	Steps    []string `json:"step,omitempty"`
	Since    string   `json:"since,omitempty"`
	Until    string   `json:"until,omitempty"`
	Limit    int      `json:"limit,omitempty"`
}

func (s *Server) apiSearch(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	var req SearchRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: want JSON {\"term\": ...}: " + err.Error()})
		return
	}
	v := url.Values{"status": req.Statuses, "step": req.Steps}
	v.Set("since", req.Since)
	v.Set("until", req.Until)
	q, err := ParseQuery(v, s.cfg.Now())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": reason(err)})
		return
	}
	q.Term = req.Term
	if strings.TrimSpace(q.Term) == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "term is empty"})
		return
	}
	switch {
	case req.Limit == 0:
		req.Limit = defaultAPILimit
	case req.Limit < 0 || req.Limit > maxAPILimit:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("limit %d: want from 1 to %d", req.Limit, maxAPILimit)})
		return
	}
	s.apiList(w, rc, q, "", req.Limit)
}

func (s *Server) apiList(w http.ResponseWriter, rc *reqCtx, q Query, cursor string, limit int) {
	page, err := s.cfg.Index.List(q, cursor, limit)
	if errors.Is(err, ErrBadQuery) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": reason(err)})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	if rc.masked() {
		for i := range page.Orders {
			maskSummary(&page.Orders[i])
		}
	}
	if page.Orders == nil {
		page.Orders = []Summary{}
	}
	writeJSON(w, http.StatusOK, APIPage{Orders: page.Orders, Next: page.Next})
}

func (s *Server) apiOrder(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	id, err := s.resolveOrder(r.PathValue("id"))
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": reason(err)})
		return
	}
	sum, err := s.cfg.Index.Get(id)
	if errors.Is(err, ErrNotFound) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "order " + id + " not found"})
		return
	}
	var st *processor.State
	if err == nil && s.cfg.States != nil {
		st, err = s.cfg.States.StateAt(r.Context(), sum.ID, sum.StatePartition, sum.StateOffset)
	}
	if err == nil && st == nil {
		err = errors.New("this console cannot read orders.state")
	}
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	raw, err := dlq.MaskState(st, !rc.masked())
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	if rc.masked() {
		maskSummary(sum)
	}
	writeJSON(w, http.StatusOK, map[string]any{"summary": sum, "state": json.RawMessage(raw)})
}

// reason is an error's text without the package's sentinel prefix.
func reason(err error) string {
	s := err.Error()
	for _, p := range []string{ErrBadQuery.Error() + ": ", dlq.ErrBadFilter.Error() + ": ", "dlq: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	return s
}
