package main

import (
	"strings"
	"testing"
	"time"
)

func TestFleetBound(t *testing.T) {
	for _, c := range []struct {
		calls                 float64
		latency               time.Duration
		airtable, zoho, bound float64
	}{
		// 5 requests/s × 10 records; 10 in flight ÷ (2 × 50 ms).
		{2, 50 * time.Millisecond, 50, 100, 50},
		// 10 ÷ (2 × 200 ms) = 25: Zoho is the tighter.
		{2, 200 * time.Millisecond, 50, 25, 25},
		// No latency: Zoho's concurrency bounds nothing.
		{2, 0, 50, 0, 50},
	} {
		a, z, b := fleetBound(c.calls, c.latency)
		if a != c.airtable || z != c.zoho || b != c.bound {
			t.Errorf("fleetBound(%v, %v) = %v, %v, %v; want %v, %v, %v", c.calls, c.latency, a, z, b, c.airtable, c.zoho, c.bound)
		}
	}
}

func TestFleetMarkdown(t *testing.T) {
	r := &Results{Fleet: []FleetRow{{
		Mode: "per processor", Processors: 3, Orders: 5000, LatencyMs: 50, Completed: 120, Capped: true,
		OrdersPerSec: 0.5, AirtableBound: 50, ZohoBound: 100, Bound: 50, OfBound: 0.01,
		Pauses: 2, AirtablePerOrder: 0.125, AirtableFill: 9.5, CRMCallsPerOrder: 2,
		Rejected: map[string]int64{"production_log": 11, "crm": 20, "alert": 3},
	}}}
	var s strings.Builder
	r.fleetMarkdown(&s)
	for _, want := range []string{
		"| per processor | 120 (stopped at the time limit) | 0 | 0.5 | 50 | 0.01 | 34 (alert 3, crm 20, production_log 11) | 2 | 0.125 | 9.50 | 2.00 | 0 |",
		"5 requests/s per base × 10 records per request = 50 orders/s",
		"= 100 orders/s",
	} {
		if !strings.Contains(s.String(), want) {
			t.Errorf("fleet section lacks %q:\n%s", want, s.String())
		}
	}
}
