package sim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// What the simulator keeps across restarts when it has a data folder, so a
// restart neither hands out an id again nor forgets what the providers
// hold:
//
//   - <DataDir>/ids: the ceiling of the ids handed out. Ids are reserved
//     in blocks of idBlock, written (and synced) before the first id of a
//     block is used, so even a killed simulator never reuses one: a deal
//     id, tracking number, invoice key or outbox file name is never given
//     twice, and no outbox file of an earlier order is overwritten.
//   - <DataDir>/records.jsonl: the providers' records, one JSON line per
//     change (Zoho's duplicate-check index and record ids, Airtable's merge
//     keys, Netvisor's invoices, Mailgun's Message-Ids), appended as they
//     happen and compacted on start. An upsert after a restart updates the
//     record created before it, and the look-ups that reconcile after a
//     crash (Netvisor by invoice number, Mailgun by Message-Id) find what
//     was created before it.
//
// Request counters (/_sim/stats) and remembered Netvisor TransactionIds
// start over.

// idBlock is how many ids one write of the ids file reserves.
const idBlock = 1000

// idCeiling is the highest id that may be handed out without writing the
// ids files first; MaxUint64 while no simulator with a data folder runs.
var (
	idCeiling atomic.Uint64
	idMu      sync.Mutex
	idFiles   = map[string]int{} // path → simulators using it
	idLog     = slog.New(slog.DiscardHandler)
)

func init() { idCeiling.Store(math.MaxUint64) }

// nextID returns a unique positive number, never one handed out before by
// a simulator with the same data folder.
func nextID() uint64 {
	v := seq.Add(1)
	if v > idCeiling.Load() {
		reserveIDs(v)
	}
	return v
}

// reserveIDs writes a ceiling above v to every ids file before v is used.
func reserveIDs(v uint64) {
	idMu.Lock()
	defer idMu.Unlock()
	if v <= idCeiling.Load() {
		return
	}
	c := v + idBlock
	for path := range idFiles {
		if err := writeFileSync(path, []byte(strconv.FormatUint(c, 10)+"\n")); err != nil {
			idLog.Error("sim: saving the id ceiling", "path", path, "err", err)
		}
	}
	idCeiling.Store(c)
}

// openIDs starts ids after the ceiling kept in path and keeps it there.
func openIDs(path string, log *slog.Logger) error {
	var floor uint64
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if floor, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return fmt.Errorf("%s: not an id ceiling: %q", path, strings.TrimSpace(string(b)))
		}
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	idMu.Lock()
	defer idMu.Unlock()
	for {
		cur := seq.Load()
		if cur >= floor || seq.CompareAndSwap(cur, floor) {
			break
		}
	}
	if len(idFiles) == 0 {
		idCeiling.Store(seq.Load()) // the next id reserves a block in every file
	}
	idFiles[path]++
	idLog = log
	c := idCeiling.Load()
	if c < seq.Load() {
		c = seq.Load()
	}
	if err := writeFileSync(path, []byte(strconv.FormatUint(c, 10)+"\n")); err != nil {
		idFiles[path]--
		return err
	}
	idCeiling.Store(c)
	return nil
}

func closeIDs(path string) {
	idMu.Lock()
	defer idMu.Unlock()
	if idFiles[path]--; idFiles[path] <= 0 {
		delete(idFiles, path)
	}
	if len(idFiles) == 0 {
		idCeiling.Store(math.MaxUint64)
	}
}

// writeFileSync replaces path with data: a temporary file, synced, renamed.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// record kinds of records.jsonl.
const (
	recZohoIndex  = "zoho.index"  // A: module\x00field\x00lower(value), B: record id
	recZohoID     = "zoho.id"     // A: record id, B: module, T: created
	recAirtable   = "airtable"    // A: base/table\x00merge key, B: record id, T: created
	recNetvisor   = "netvisor"    // Inv: the invoice
	recMailgunMsg = "mailgun.msg" // A: Message-Id without brackets, B: with them
)

// jrec is one line of records.jsonl.
type jrec struct {
	K   string     `json:"k"`
	A   string     `json:"a,omitempty"`
	B   string     `json:"b,omitempty"`
	T   time.Time  `json:"t,omitzero"`
	Inv *nvJournal `json:"inv,omitempty"`
}

// nvJournal is a stored Netvisor invoice.
type nvJournal struct {
	Key      uint64 `json:"key"`
	Number   string `json:"number"`
	Date     string `json:"date"`
	Status   string `json:"status"`
	Customer string `json:"customer"`
	Ref      string `json:"ref"`
	Amount   string `json:"amount"`
}

// records appends the providers' record changes to records.jsonl, each
// with one write (no fsync: a killed process loses nothing the kernel has).
type records struct {
	mu   sync.Mutex
	path string
	f    *os.File // nil: nothing kept
	log  *slog.Logger
}

func (r *records) add(rec jrec) {
	if r == nil || r.f == nil {
		return
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return
	}
	b = append(b, '\n')
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return
	}
	if _, err := r.f.Write(b); err != nil {
		r.log.Error("sim: saving a record", "path", r.path, "err", err)
	}
}

func (r *records) close() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// openPersistence loads the ids and records kept in the data folder into s
// and opens them for appending; without a data folder it does nothing.
func (s *Server) openPersistence() error {
	s.records = &records{log: s.log}
	if s.cfg.DataDir == "" {
		return nil
	}
	if err := os.MkdirAll(s.cfg.DataDir, 0o755); err != nil {
		return err
	}
	s.idsPath = filepath.Join(s.cfg.DataDir, "ids")
	if err := openIDs(s.idsPath, s.log); err != nil {
		s.idsPath = ""
		return fmt.Errorf("ids: %w", err)
	}
	path := filepath.Join(s.cfg.DataDir, "records.jsonl")
	if err := s.loadRecords(path); err != nil {
		return fmt.Errorf("records: %w", err)
	}
	// Compact: write what is held now, then append to it.
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("records: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	var werr error
	s.snapshotRecords(func(r jrec) {
		if werr == nil {
			werr = enc.Encode(r)
		}
	})
	if werr == nil {
		werr = w.Flush()
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		return fmt.Errorf("records: %w", werr)
	}
	if s.records.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return fmt.Errorf("records: %w", err)
	}
	s.records.path = path
	return nil
}

func (s *Server) closePersistence() error {
	err := s.records.close()
	if s.idsPath != "" {
		closeIDs(s.idsPath)
		s.idsPath = ""
	}
	return err
}

// loadRecords applies records.jsonl to the providers' state. A torn last
// line (a crash mid-write) is skipped.
func (s *Server) loadRecords(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	n := 0
	for sc.Scan() {
		n++
		var r jrec
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			s.log.Warn("sim: skipping an unreadable record", "path", path, "line", n)
			continue
		}
		s.applyRecord(r)
	}
	return sc.Err()
}

func (s *Server) applyRecord(r jrec) {
	switch r.K {
	case recZohoIndex:
		s.zoho.index[r.A] = r.B
	case recZohoID:
		s.zoho.ids[r.A] = zohoRec{module: r.B, created: r.T}
	case recAirtable:
		s.airt.byMerge[r.A] = r.B
		table, _, _ := strings.Cut(r.A, "\x00")
		s.airt.records[table+"\x00"+r.B] = r.T
	case recNetvisor:
		if i := r.Inv; i != nil {
			s.nv.byNumber[i.Number] = append(s.nv.byNumber[i.Number], nvStored{key: i.Key, number: i.Number, date: i.Date,
				status: i.Status, customer: i.Customer, ref: i.Ref, amount: i.Amount})
		}
	case recMailgunMsg:
		s.mg.sent.Store(r.A, r.B)
	}
}

// snapshotRecords emits every record held, for compaction.
func (s *Server) snapshotRecords(emit func(jrec)) {
	for id, rec := range s.zoho.ids {
		emit(jrec{K: recZohoID, A: id, B: rec.module, T: rec.created})
	}
	for k, id := range s.zoho.index {
		emit(jrec{K: recZohoIndex, A: k, B: id})
	}
	for mk, id := range s.airt.byMerge {
		table, _, _ := strings.Cut(mk, "\x00")
		emit(jrec{K: recAirtable, A: mk, B: id, T: s.airt.records[table+"\x00"+id]})
	}
	for _, invs := range s.nv.byNumber {
		for _, i := range invs {
			emit(jrec{K: recNetvisor, Inv: &nvJournal{Key: i.key, Number: i.number, Date: i.date, Status: i.status,
				Customer: i.customer, Ref: i.ref, Amount: i.amount}})
		}
	}
	s.mg.sent.Range(func(k, v any) bool {
		emit(jrec{K: recMailgunMsg, A: k.(string), B: v.(string)})
		return true
	})
}
