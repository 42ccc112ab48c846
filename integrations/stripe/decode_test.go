package stripe

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	stripego "github.com/stripe/stripe-go/v76"

	"github.com/orderflow/orderflow/integrations/sim"
)

// decodeTargets are the values the client decodes responses into, each
// made fresh as stripe-go makes them.
var decodeTargets = map[string]func() any{
	"session list":   func() any { return &stripego.CheckoutSessionList{} },
	"session":        func() any { return &stripego.CheckoutSession{} },
	"line item list": func() any { return &stripego.LineItemList{} },
	"payment intent": func() any { return &stripego.PaymentIntent{} },
}

// agree decodes body into each target with encoding/json (stripe-go's way)
// and with decodeResponse and fails if the values or the errors differ.
func agree(t *testing.T, body []byte) {
	t.Helper()
	for name, fresh := range decodeTargets {
		want, got := fresh(), fresh()
		werr := json.Unmarshal(body, want)
		gerr := decodeResponse(body, got)
		if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
			t.Fatalf("%s: encoding/json says %v, decodeResponse %v\n%s", name, werr, gerr, body)
		}
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("%s: values differ\nencoding/json: %+v\ndecodeResponse: %+v\n%s", name, want, got, body)
		}
	}
}

// decodeSeeds are bodies beside the recorded responses: what encoding/json
// and stripe-go's methods do at the edges.
var decodeSeeds = []string{
	// Ids where objects may be, with the raw text between the quotes kept
	// (stripe.ParseID does not unescape), and null.
	`{"id":"cs_1","payment_intent":"pi_\u0041\"x","customer":null,"line_items":{"data":[{"id":"li_1","price":"price_1","discounts":["di_1",{"id":"di_2","coupon":"co_1"}],"taxes":[{"amount":10,"rate":"txr_1"}]}]}}`,
	`{"id":"pi_1","latest_charge":{"id":"ch_1","amount":100,"payment_intent":"pi_1"},"customer":"cus_1"}`,
	`{"id":"pi_1","latest_charge":null,"amount":"100"}`,
	`{"data":[null,{"id":"cs_2","payment_intent":{"id":"pi_2","amount":5,"AMOUNT":6}}],"has_more":true}`,
	// Names matched without regard to case, duplicates (the last wins).
	`{"ID":"cs_1","Amount_Total":5,"amount_total":6,"Payment_Intent":{"Id":"pi_1"}}`,
	// Wrong types: encoding/json's errors.
	`{"id":"cs_1","payment_intent":5}`,
	`{"id":"cs_1","payment_intent":["pi_1"]}`,
	`{"data":[{"shipping_cost":{"shipping_rate":true}}]}`,
	`{"amount_total":1e400}`,
	`{"amount_total":1.5}`,
	// Not JSON, or not an object.
	`{"id":`, `[]`, `"pi_1"`, `null`, `{"id":"a"} x`, "{\"id\":\"\xff\"}",
}

func TestDecodeAgrees(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded responses: %v", err)
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		agree(t, body)
	}
	for _, s := range decodeSeeds {
		agree(t, []byte(s))
	}
}

// TestDecodeExpandedSession checks values the order is built from, written
// by hand from the recorded response, so that an agreement of two wrong
// decoders cannot pass.
func TestDecodeExpandedSession(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "sessions_list_expanded.json"))
	if err != nil {
		t.Fatal(err)
	}
	var l stripego.CheckoutSessionList
	if err := decodeResponse(body, &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Data) != 1 {
		t.Fatalf("%d sessions, want 1", len(l.Data))
	}
	cs := l.Data[0]
	if cs.ID != "cs_test_a1B2c3D4" || cs.AmountTotal != 4910 || cs.Currency != "eur" {
		t.Fatalf("session %s: total %d %s", cs.ID, cs.AmountTotal, cs.Currency)
	}
	if cs.PaymentIntent == nil || cs.PaymentIntent.Object != "payment_intent" {
		t.Fatalf("payment intent not expanded: %+v", cs.PaymentIntent)
	}
	if cs.LineItems == nil || len(cs.LineItems.Data) == 0 || cs.LineItems.Data[0].Price == nil || cs.LineItems.Data[0].Price.ID == "" {
		t.Fatalf("line items: %+v", cs.LineItems)
	}
}

// TestDecodeOverridesExpandableTypes checks that every type decoded in the
// same pass is a stripe-go type with its own UnmarshalJSON (an expandable
// object): a type that lost its method in a stripe-go upgrade would be
// decoded here in a way stripe-go no longer does.
func TestDecodeOverridesExpandableTypes(t *testing.T) {
	um := reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
	for _, v := range []any{
		&stripego.PaymentIntent{}, &stripego.Charge{}, &stripego.TaxRate{}, &stripego.Discount{}, &stripego.Coupon{},
		&stripego.PromotionCode{}, &stripego.ShippingRate{}, &stripego.Price{}, &stripego.Product{},
	} {
		if !reflect.TypeOf(v).Implements(um) {
			t.Errorf("%T has no UnmarshalJSON method", v)
		}
		// An id decodes as the method decodes it.
		want, got := reflect.New(reflect.TypeOf(v).Elem()).Interface(), reflect.New(reflect.TypeOf(v).Elem()).Interface()
		body := []byte(`"x_1"`)
		if err := json.Unmarshal(body, want); err != nil {
			t.Fatal(err)
		}
		if err := decodeResponse(body, got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(want, got) || reflect.ValueOf(got).Elem().FieldByName("ID").String() != "x_1" {
			t.Errorf("%T from an id: %+v, want %+v", v, got, want)
		}
	}
}

func FuzzDecodeAgrees(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		agree(t, body)
	})
}

// BenchmarkDecodeSession decodes the expanded session list of one order
// the way stripe-go does (encoding/json, through the types' methods) and
// with decodeResponse. Run with
//
//	go test -run '^$' -bench DecodeSession -benchmem ./integrations/stripe/
func BenchmarkDecodeSession(b *testing.B) {
	body, err := os.ReadFile(filepath.Join("testdata", "sessions_list_expanded.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encoding/json", func(b *testing.B) {
		for range b.N {
			var l stripego.CheckoutSessionList
			if err := json.Unmarshal(body, &l); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decodeResponse", func(b *testing.B) {
		for range b.N {
			var l stripego.CheckoutSessionList
			if err := decodeResponse(body, &l); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOrderDetailsDecode reads one Checkout order from the provider
// simulator (in the same process) through stripe-go's own backend and
// through decodingBackend. Run with
//
//	go test -run '^$' -bench OrderDetailsDecode -benchmem ./integrations/stripe/
func BenchmarkOrderDetailsDecode(b *testing.B) {
	s, err := sim.New(sim.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	c, err := New(Config{BaseURL: ts.URL, SecretKey: "sk_test_bench"})
	if err != nil {
		b.Fatal(err)
	}
	plain := *c
	impl := c.sessions.B.(decodingBackend).BackendImplementation
	plain.sessions.B, plain.pis.B = impl, impl
	for _, v := range []struct {
		name string
		c    *Client
	}{{"stripe-go", &plain}, {"decodingBackend", c}} {
		b.Run(v.name, func(b *testing.B) {
			for range b.N {
				if _, err := v.c.OrderDetails(context.Background(), "pi_bench"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
