package sim

import (
	"net/http"
	"net/http/httptest"
	"time"
)

// lateAnswer serves a call under ModeLateAnswer: half the delay, the
// handler (the object is created), the other half, then the answer. A
// client gone in the second half is counted in AnswersLost.
func lateAnswer(st *stats, step string, w http.ResponseWriter, r *http.Request, h http.HandlerFunc, delay time.Duration) {
	first := delay / 2
	if !sleep(r, first) {
		return
	}
	rec := httptest.NewRecorder()
	h(rec, r)
	if !sleep(r, delay-first) {
		st.answerLost(step)
		return
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}
