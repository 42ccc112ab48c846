package tracing

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestTransportRedactsTheQuery checks that a provider call's span carries
// no query value (keys and customer data go there) nor user info, while
// the provider gets the request as it was made.
func TestTransportRedactsTheQuery(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.RequestURI()
		if u, p, ok := r.BasicAuth(); ok {
			got += " " + u + ":" + p
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	rec := tracetest.NewSpanRecorder()
	tr := New(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	cl := &http.Client{Transport: tr.Transport(http.DefaultTransport)}
	ctx, span := tr.Tracer().Start(context.Background(), "attempt")
	u, _ := url.Parse(srv.URL)
	u.User = url.UserPassword("user", "pass-S3CRET")
	u.Path = "/rest/shipment/v3/edi/labels/pdf"
	u.RawQuery = "apikey=KEY-S3CRET&labelType=standard&customercodelist=DE987650041&flag&&x="
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	span.End()
	if string(body) != "ok" || resp.Request.URL.RawQuery != u.RawQuery {
		t.Errorf("answer %q to %q", body, resp.Request.URL.RawQuery)
	}
	if want := "/rest/shipment/v3/edi/labels/pdf?apikey=KEY-S3CRET&labelType=standard&customercodelist=DE987650041&flag&&x= user:pass-S3CRET"; got != want {
		t.Errorf("the provider got %q, want %q", got, want)
	}
	var calls, urls int
	for _, s := range rec.Ended() {
		if s.Name() == "attempt" {
			continue
		}
		calls++
		for _, a := range s.Attributes() {
			v := a.Value.Emit()
			if strings.Contains(v, "S3CRET") || strings.Contains(v, "DE987650041") || strings.Contains(v, "standard") {
				t.Errorf("span attribute %s = %q", a.Key, v)
			}
			if a.Key == "url.full" {
				urls++
				want := strings.TrimPrefix(srv.URL, "http://")
				want = "http://" + want + "/rest/shipment/v3/edi/labels/pdf?apikey=REDACTED&labelType=REDACTED&customercodelist=REDACTED&flag=REDACTED&&x=REDACTED"
				if v != want {
					t.Errorf("url.full = %q, want %q", v, want)
				}
			}
		}
	}
	if calls != 1 || urls != 1 {
		t.Errorf("%d client spans, %d url.full attributes, want 1 each", calls, urls)
	}
}

// TestTransportHidesASecretURL: a request marked WithSecretURL (a Slack
// incoming webhook, an outbound webhook) shows neither host nor path in its
// span; the receiver gets it as it was.
func TestTransportHidesASecretURL(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.URL.Path }))
	defer srv.Close()
	rec := tracetest.NewSpanRecorder()
	tr := New(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	cl := &http.Client{Transport: tr.Transport(http.DefaultTransport)}
	ctx, span := tr.Tracer().Start(context.Background(), "attempt")
	req, _ := http.NewRequestWithContext(WithSecretURL(ctx), http.MethodPost, srv.URL+"/services/T0/B0/S3CRETtoken", nil)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	span.End()
	if got != "/services/T0/B0/S3CRETtoken" {
		t.Errorf("the receiver got %q", got)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	seen := false
	for _, s := range rec.Ended() {
		if s.Name() == "attempt" {
			continue
		}
		if strings.Contains(s.Name(), host) {
			t.Errorf("span name %q names the host", s.Name())
		}
		for _, a := range s.Attributes() {
			v := a.Value.Emit()
			if strings.Contains(v, "S3CRET") || strings.Contains(v, "services") || strings.Contains(v, host) {
				t.Errorf("span attribute %s = %q", a.Key, v)
			}
			if a.Key == "url.full" {
				seen = true
				if v != "http://REDACTED/REDACTED" {
					t.Errorf("url.full = %q", v)
				}
			}
		}
	}
	if !seen {
		t.Error("no url.full")
	}
}

// TestTransportHidesASecretURLsHostInErrors: a transport error of a secret
// URL (a DNS failure names the host) reaches the span's status without
// the host, and still unwraps to what it was.
func TestTransportHidesASecretURLsHostInErrors(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr := New(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	cl := &http.Client{Transport: tr.Transport(http.DefaultTransport)}
	ctx, span := tr.Tracer().Start(context.Background(), "attempt")
	req, _ := http.NewRequestWithContext(WithSecretURL(ctx), http.MethodPost, "https://user-tok3n-s3cr3t.hooks.invalid/hook", nil)
	_, err := cl.Do(req)
	span.End()
	var dnsErr *net.DNSError
	if err == nil || !errors.As(err, &dnsErr) {
		t.Fatalf("err %v, want a DNS error", err)
	}
	for _, s := range rec.Ended() {
		if strings.Contains(s.Status().Description, "tok3n") {
			t.Errorf("span %q status %q names the host", s.Name(), s.Status().Description)
		}
		for _, ev := range s.Events() {
			for _, a := range ev.Attributes {
				if strings.Contains(a.Value.Emit(), "tok3n") {
					t.Errorf("span event %s %s = %q", ev.Name, a.Key, a.Value.Emit())
				}
			}
		}
	}
}
