package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The profiler on a metrics listener (no login) serves the profiles but
// not the command line, which may hold a --webhook-secret.
func TestPprofHasNoCommandLine(t *testing.T) {
	mux := http.NewServeMux()
	servePprof(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for path, want := range map[string]int{
		"/debug/pprof/cmdline":           404,
		"/debug/pprof/cmdline?x=1":       404,
		"/debug/pprof/":                  200,
		"/debug/pprof/goroutine?debug=1": 200,
		"/debug/pprof/symbol":            200,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
		if strings.Contains(string(body), "pprof.test") || strings.Contains(string(body), "-test.") {
			t.Errorf("%s shows the command line", path)
		}
	}
}
