package hostile

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/gateway"
)

// request is one corpus case: a request to the gateway and the answer it
// must get.
type request struct {
	name   string
	method string // POST when empty
	path   string // gateway.WebhookPath when empty
	body   []byte
	// sig builds the Stripe-Signature header; nil signs validly with the
	// primary secret at the time of sending.
	sig   signer
	noSig bool // send no Stripe-Signature header
	// contentType is sent as Content-Type; empty means application/json and
	// "-" sends none.
	contentType string
	chunked     bool // send without Content-Length
	// sendFirst sends the identical request (same signature) once before,
	// which must be queued: the case is then a replay.
	sendFirst bool
	want      answer
}

// answer is the expected response. A "queued" answer means exactly one
// record carrying the body; any other answer means nothing was queued.
type answer struct {
	status int
	text   string // the body must contain it: the outcome of a 200, the reason of a 400
	key    string // record key of a queued event (default piID)
}

var (
	queued    = answer{status: 200, text: "queued"}
	ignored   = answer{status: 200, text: "ignored"}
	duplicate = answer{status: 200, text: "duplicate"}
	tooLarge  = answer{status: 413, text: "body too large"}
	notAllow  = answer{status: 405, text: "method not allowed"}
)

func bad(reason string) answer { return answer{status: 400, text: reason} }

const (
	reasonMissing   = "missing Stripe-Signature header"
	reasonMalformed = "malformed Stripe-Signature header"
	reasonNoV1      = "no valid v1 signature"
	reasonStale     = "signature timestamp outside tolerance"
	reasonNotJSON   = "body is not a JSON Stripe event"
)

// nested returns depth opening brackets, a value and depth closing ones.
func nested(depth int) string {
	return strings.Repeat("[", depth) + "1" + strings.Repeat("]", depth)
}

func corpus() []request {
	valid := piEvent(aino)
	checkout := func(pi string) []byte {
		return event("checkout.session.completed", `{"id":"`+sessionID+`","object":"checkout.session","mode":"payment",`+
			`"payment_status":"paid","status":"complete","amount_total":4990,"currency":"eur","payment_intent":`+pi+`}`)
	}
	other := bytes.Replace(valid, []byte(`"amount":4990`), []byte(`"amount":1`), 1)
	decoys := strings.Repeat(",v1="+strings.Repeat("ab", 32), 9)
	return []request{
		// Signatures.
		{name: "valid", body: valid, want: queued},
		{name: "valid with the rotated secret", body: valid, sig: signedAt(rotatedSecret, 0), want: queued},
		{name: "valid with unknown schemes around v1", body: valid, sig: headerOf(func(ts int64, sig string) string {
			return fmt.Sprintf("t=%d,v0=00,v1=%s,v9=zz", ts, sig)
		}), want: queued},
		{name: "valid v1 in upper-case hex", body: valid, sig: headerOf(func(ts int64, sig string) string {
			return fmt.Sprintf("t=%d,v1=%s", ts, strings.ToUpper(sig))
		}), want: queued},
		{name: "downgrade: v0 only, correctly computed", body: valid, sig: headerOf(func(ts int64, sig string) string {
			return fmt.Sprintf("t=%d,v0=%s", ts, sig)
		}), want: bad(reasonNoV1)},
		{name: "downgrade: valid v0 and a wrong v1", body: valid, sig: headerOf(func(ts int64, sig string) string {
			return fmt.Sprintf("t=%d,v0=%s,v1=%s", ts, sig, strings.Repeat("0", 64))
		}), want: bad(reasonNoV1)},
		{name: "v1 with a wrong secret", body: valid, sig: signedAt("whsec_attacker_guess", 0), want: bad(reasonNoV1)},
		{name: "v1 with the secret lacking its whsec_ prefix", body: valid, sig: signedAt(strings.TrimPrefix(primarySecret, "whsec_"), 0), want: bad(reasonNoV1)},
		{name: "v1 not hex", body: valid, sig: headerOf(func(ts int64, _ string) string {
			return fmt.Sprintf("t=%d,v1=%s", ts, strings.Repeat("zz", 32))
		}), want: bad(reasonNoV1)},
		{name: "v1 hex one digit short", body: valid, sig: headerOf(func(ts int64, sig string) string {
			return fmt.Sprintf("t=%d,v1=%s", ts, sig[:63])
		}), want: bad(reasonNoV1)},
		{name: "v1 truncated to 16 bytes", body: valid, sig: headerOf(func(ts int64, sig string) string {
			return fmt.Sprintf("t=%d,v1=%s", ts, sig[:32])
		}), want: bad(reasonNoV1)},
		{name: "v1 empty", body: valid, sig: headerOf(func(ts int64, _ string) string { return fmt.Sprintf("t=%d,v1=", ts) }), want: bad(reasonNoV1)},
		{name: "valid signature after nine decoys", body: valid, sig: headerOf(func(ts int64, sig string) string {
			return fmt.Sprintf("t=%d%s,v1=%s", ts, decoys, sig)
		}), want: bad(reasonNoV1)},
		{name: "t missing", body: valid, sig: headerOf(func(_ int64, sig string) string { return "v1=" + sig }), want: bad(reasonMalformed)},
		{name: "t not numeric", body: valid, sig: headerOf(func(_ int64, sig string) string { return "t=now,v1=" + sig }), want: bad(reasonMalformed)},
		{name: "t empty", body: valid, sig: headerOf(func(_ int64, sig string) string { return "t=,v1=" + sig }), want: bad(reasonMalformed)},
		{name: "t overflows int64", body: valid, sig: headerOf(func(_ int64, sig string) string { return "t=99999999999999999999,v1=" + sig }), want: bad(reasonMalformed)},
		{name: "t duplicated, signed one last (last wins, as stripe-go)", body: valid, sig: headerOf(func(ts int64, sig string) string {
			return fmt.Sprintf("t=%d,t=%d,v1=%s", ts-86400, ts, sig)
		}), want: queued},
		{name: "t duplicated, stale one last", body: valid, sig: headerOf(func(ts int64, sig string) string {
			return fmt.Sprintf("t=%d,t=%d,v1=%s", ts, ts-86400, sig)
		}), want: bad(reasonStale)},
		{name: "pair without =", body: valid, sig: headerOf(func(ts int64, sig string) string {
			return fmt.Sprintf("t=%d,v1=%s,v1", ts, sig)
		}), want: bad(reasonMalformed)},
		{name: "value with a second =", body: valid, sig: headerOf(func(ts int64, sig string) string {
			return fmt.Sprintf("t=%d,v1=%s=", ts, sig)
		}), want: bad(reasonMalformed)},
		{name: "space after the comma", body: valid, sig: headerOf(func(ts int64, sig string) string {
			return fmt.Sprintf("t=%d, v1=%s", ts, sig)
		}), want: bad(reasonNoV1)},
		{name: "signature of another body", body: valid, sig: func(_ []byte, now time.Time) string {
			return signedAt(primarySecret, 0)(other, now)
		}, want: bad(reasonNoV1)},
		{name: "body changed after signing: trailing newline", body: append(append([]byte{}, valid...), '\n'), sig: func(_ []byte, now time.Time) string {
			return signedAt(primarySecret, 0)(valid, now)
		}, want: bad(reasonNoV1)},
		{name: "signature over the body without its timestamp prefix", body: valid, sig: func(body []byte, now time.Time) string {
			return fmt.Sprintf("t=%d,v1=%s", now.Unix(), hmacOfBody(primarySecret, body))
		}, want: bad(reasonNoV1)},
		{name: "no Stripe-Signature header", body: valid, noSig: true, want: bad(reasonMissing)},
		{name: "empty Stripe-Signature header", body: valid, sig: func([]byte, time.Time) string { return "" }, want: bad(reasonMissing)},

		// Timestamps and replays.
		{name: "signed 299 s ago", body: valid, sig: signedAt(primarySecret, -299*time.Second), want: queued},
		{name: "replay after the tolerance: signed 301 s ago", body: valid, sig: signedAt(primarySecret, -301*time.Second), want: bad(reasonStale)},
		{name: "replay a day later", body: valid, sig: signedAt(primarySecret, -24*time.Hour), want: bad(reasonStale)},
		{name: "future: signed 301 s ahead", body: valid, sig: signedAt(primarySecret, 301*time.Second), want: bad(reasonStale)},
		{name: "future: signed a year ahead", body: valid, sig: signedAt(primarySecret, 365*24*time.Hour), want: bad(reasonStale)},
		{name: "t zero", body: valid, sig: func(body []byte, _ time.Time) string {
			return "t=0,v1=" + hmacHex(primarySecret, 0, body)
		}, want: bad(reasonStale)},
		{name: "t negative", body: valid, sig: func(body []byte, _ time.Time) string {
			return "t=-1,v1=" + hmacHex(primarySecret, -1, body)
		}, want: bad(reasonStale)},
		{name: "t max int64", body: valid, sig: func(body []byte, _ time.Time) string {
			return fmt.Sprintf("t=%d,v1=%s", int64(1<<63-1), hmacHex(primarySecret, 1<<63-1, body))
		}, want: bad(reasonStale)},
		{name: "replay within the tolerance", body: valid, sendFirst: true, want: duplicate},

		// Truncated, oversized and deeply nested bodies.
		{name: "empty body", body: []byte{}, want: bad(reasonNotJSON)},
		{name: "truncated JSON, signed as sent", body: valid[:len(valid)/2], want: bad(reasonNotJSON)},
		{name: "truncated in transit: signature of the whole body", body: valid[:len(valid)/2], sig: func(_ []byte, now time.Time) string {
			return signedAt(primarySecret, 0)(valid, now)
		}, want: bad(reasonNoV1)},
		{name: "exactly the body limit, huge metadata", body: sizedEvent(gateway.DefaultMaxBody), want: queued},
		{name: "one byte over the body limit", body: sizedEvent(gateway.DefaultMaxBody + 1), want: tooLarge},
		{name: "one byte over the body limit, chunked", body: sizedEvent(gateway.DefaultMaxBody + 1), chunked: true, want: tooLarge},
		{name: "4 MiB body", body: sizedEvent(4 << 20), want: tooLarge},
		{name: "4 MiB body, chunked", body: sizedEvent(4 << 20), chunked: true, want: tooLarge},
		{name: "100k nested arrays", body: []byte(strings.Repeat("[", 100_000)), want: bad(reasonNotJSON)},
		{name: "100k nested arrays in metadata", body: event("payment_intent.succeeded", paymentIntent(aino, `"deep":`+nested(100_000))), want: bad(reasonNotJSON)},
		{name: "80k nested objects in metadata", body: event("payment_intent.succeeded", paymentIntent(aino, `"deep":`+strings.Repeat(`{"a":`, 80_000)+"1"+strings.Repeat("}", 80_000))), want: bad(reasonNotJSON)},
		{name: "500 nested arrays in metadata", body: event("payment_intent.succeeded", paymentIntent(aino, `"deep":`+nested(500))), want: queued},
		{name: "top-level array", body: []byte(`[` + string(valid) + `]`), want: bad(reasonNotJSON)},
		{name: "JSON null", body: []byte(`null`), want: bad(reasonNotJSON)},
		{name: "trailing garbage", body: append(append([]byte{}, valid...), 'x'), want: bad(reasonNotJSON)},
		{name: "two concatenated events", body: append(append([]byte{}, valid...), valid...), want: bad(reasonNotJSON)},
		{name: "whitespace around the event", body: []byte(" \n\t" + string(valid) + "\r\n"), want: queued},
		{name: "UTF-8 byte order mark", body: append([]byte("\xef\xbb\xbf"), valid...), want: bad(reasonNotJSON)},
		{name: "object is not an event", body: bytes.Replace(valid, []byte(`"object":"event"`), []byte(`"object":"charge"`), 1), want: bad(reasonNotJSON)},

		// Wrong types in known fields.
		{name: "id as number", body: bytes.Replace(valid, []byte(`"id":"`+eventID+`"`), []byte(`"id":12345`), 1), want: bad(reasonNotJSON)},
		{name: "type as object", body: bytes.Replace(valid, []byte(`"type":"payment_intent.succeeded"`), []byte(`"type":{"name":"payment_intent.succeeded"}`), 1), want: bad(reasonNotJSON)},
		{name: "type as array", body: bytes.Replace(valid, []byte(`"type":"payment_intent.succeeded"`), []byte(`"type":["payment_intent.succeeded"]`), 1), want: bad(reasonNotJSON)},
		{name: "data.object as string", body: event("payment_intent.succeeded", `"`+piID+`"`), want: bad(reasonNotJSON)},
		{name: "data as array", body: bytes.Replace(valid, []byte(`"data":{"object":`), []byte(`"data":[{"object":`), 1), want: bad(reasonNotJSON)},
		{name: "data.object.id as number", body: event("payment_intent.succeeded", `{"id":42,"object":"payment_intent"}`), want: bad(reasonNotJSON)},
		{name: "created as string", body: bytes.Replace(valid, []byte(`"created":1701475200`), []byte(`"created":"1701475200"`), 1), want: bad(reasonNotJSON)},
		{name: "created as float", body: bytes.Replace(valid, []byte(`"created":1701475200`), []byte(`"created":1.7e9`), 1), want: bad(reasonNotJSON)},
		{name: "created overflows int64", body: bytes.Replace(valid, []byte(`"created":1701475200`), []byte(`"created":99999999999999999999`), 1), want: bad(reasonNotJSON)},
		{name: "api_version as number", body: bytes.Replace(valid, []byte(`"api_version":"2023-10-16"`), []byte(`"api_version":20231016`), 1), want: bad(reasonNotJSON)},
		{name: "payment_intent as number: keyed by the session", body: checkout(`12345`), want: answer{status: 200, text: "queued", key: sessionID}},
		{name: "payment_intent as bool: keyed by the session", body: checkout(`true`), want: answer{status: 200, text: "queued", key: sessionID}},
		{name: "payment_intent expanded", body: checkout(`{"id":"` + piID + `","object":"payment_intent"}`), want: queued},
		{name: "payment_intent expanded with a numeric id", body: checkout(`{"id":7}`), want: answer{status: 200, text: "queued", key: sessionID}},
		{name: "amount as string in an unread field", body: bytes.Replace(valid, []byte(`"amount":4990`), []byte(`"amount":"4990"`), 1), want: queued},
		{name: "amount beyond float64 in an unread field", body: bytes.Replace(valid, []byte(`"amount":4990`), []byte(`"amount":1e400`), 1), want: queued},
		{name: "id missing", body: bytes.Replace(valid, []byte(`"id":"`+eventID+`",`), nil, 1), want: bad("event has no id")},
		{name: "type missing", body: bytes.Replace(valid, []byte(`,"type":"payment_intent.succeeded"`), nil, 1), want: bad("event has no type")},
		{name: "type empty", body: event("", paymentIntent(aino, "")), want: bad("event has no type")},
		{name: "data.object null", body: event("payment_intent.succeeded", `null`), want: bad("event has no data.object")},
		{name: "data.object without id", body: event("payment_intent.succeeded", `{"object":"payment_intent"}`), want: bad("event data.object has no id")},
		{name: "event id blank", body: bytes.Replace(valid, []byte(`"id":"`+eventID+`"`), []byte(`"id":"  "`), 1), want: bad("event id is blank")},
		{name: "event id of invalid UTF-8", body: bytes.Replace(valid, []byte(`"id":"`+eventID+`"`), []byte("\"id\":\"evt_\xff\""), 1), want: bad("event id is not valid UTF-8")},
		{name: "event id with a lone surrogate escape", body: bytes.Replace(valid, []byte(`"id":"`+eventID+`"`), []byte(`"id":"evt_\ud800"`), 1), want: bad("event id is not valid UTF-8")},
		{name: "event id with a newline", body: bytes.Replace(valid, []byte(`"id":"`+eventID+`"`), []byte(`"id":"evt_1\nX-Injected: 1"`), 1), want: bad("event id has a control character")},
		{name: "object id blank", body: event("payment_intent.succeeded", `{"id":" ","object":"payment_intent"}`), want: bad("object id is blank")},
		{name: "object id with a newline", body: event("payment_intent.succeeded", `{"id":"A\nB","object":"payment_intent"}`), want: bad("object id has a control character")},
		{name: "object id with an escaped NUL", body: event("payment_intent.succeeded", `{"id":"pi_1\u0000","object":"payment_intent"}`), want: bad("object id has a control character")},
		{name: "payment_intent with a newline", body: checkout(`"pi_A\nB"`), want: bad("payment_intent id has a control character")},
		{name: "payment_intent blank", body: checkout(`" "`), want: bad("payment_intent id is blank")},

		// Event types the gateway does not queue.
		{name: "unknown type customer.created", body: event("customer.created", `{"id":"cus_1","object":"customer","name":"Aino Virtanen"}`), want: ignored},
		{name: "unknown type payment_intent.created", body: event("payment_intent.created", paymentIntent(aino, "")), want: ignored},
		{name: "type in upper case", body: event("PAYMENT_INTENT.SUCCEEDED", paymentIntent(aino, "")), want: ignored},
		{name: "type with an escaped NUL suffix", body: event(`payment_intent.succeeded\u0000`, paymentIntent(aino, "")), want: ignored},
		{name: "type with trailing space", body: event("payment_intent.succeeded ", paymentIntent(aino, "")), want: ignored},

		// Unicode edge cases in names and addresses: accepted, carried unchanged.
		{name: "escaped NUL in the name", body: piEvent(person{`Aino\u0000Virtanen`, aino.line1, aino.city}), want: queued},
		{name: "RTL override in name and address", body: piEvent(person{"\u202eAino Virtanen", "\u202eHämeenkatu 10\u202c", "\u2067Tampere\u2069"}), want: queued},
		{name: "emoji with ZWJ sequences", body: piEvent(person{"Aino 👩‍👩‍👧‍👦 Virtanen", "Hämeenkatu 🏳️‍🌈 10", "Tampere 🇫🇮"}), want: queued},
		{name: "stacked combining marks", body: piEvent(person{"A\u0301\u0302\u0303\u0304\u0305\u0306ino Virtanen", "Ha\u0308meenkatu 10", strings.Repeat("e\u0301", 200)}), want: queued},
		{name: "invalid UTF-8 bytes in the city", body: piEvent(person{aino.name, aino.line1, "Tam\xff\xfepere"}), want: queued},
		{name: "overlong UTF-8 encoding of /", body: piEvent(person{aino.name, "H\xc0\xafmeenkatu 10", aino.city}), want: queued},
		{name: "lone surrogate escapes", body: piEvent(person{`Aino \ud800 Virtanen`, `H\udc00\ud800meenkatu 10`, `\udfff`}), want: queued},
		{name: "raw line and paragraph separators", body: piEvent(person{"Aino\u2028Virtanen", "Hämeenkatu\u2029 10", aino.city}), want: queued},
		{name: "escaped control characters", body: piEvent(person{`Aino\r\nX-Injected: 1\u001b[31m`, `\t\b\f`, aino.city}), want: queued},
		{name: "noncharacters and private use", body: piEvent(person{"Aino \uffff\ufffe Virtanen", "\U0010FFFF Hämeenkatu 10", "\ue000Tampere"}), want: queued},
		{name: "100 KiB name", body: piEvent(person{strings.Repeat("Ä", 50_000), aino.line1, aino.city}), want: queued},
		{name: "raw NUL byte in the name", body: piEvent(person{"Aino\x00Virtanen", aino.line1, aino.city}), want: bad(reasonNotJSON)},
		{name: "raw control byte in the city", body: piEvent(person{aino.name, aino.line1, "Tam\x01pere"}), want: bad(reasonNotJSON)},
		{name: "escaped non-ASCII event id", body: bytes.Replace(valid, []byte(`"id":"`+eventID+`"`), []byte(`"id":"evt_\u00e9\ud83d\ude00"`), 1), want: queued},

		// Headers and methods.
		{name: "no Content-Type", body: valid, contentType: "-", want: queued},
		{name: "Content-Type text/plain", body: valid, contentType: "text/plain", want: queued},
		{name: "Content-Type form", body: valid, contentType: "application/x-www-form-urlencoded", want: queued},
		{name: "GET", method: http.MethodGet, want: notAllow},
		{name: "PUT with a valid event", method: http.MethodPut, body: valid, want: notAllow},
		{name: "DELETE", method: http.MethodDelete, want: notAllow},
		{name: "PATCH with a valid event", method: http.MethodPatch, body: valid, want: notAllow},
		{name: "OPTIONS", method: http.MethodOptions, want: notAllow},
		{name: "valid event to another path", path: gateway.WebhookPath + "/x", body: valid, want: answer{status: 404}},
	}
}

func TestCorpus(t *testing.T) {
	cases := corpus()
	if len(cases) < 40 {
		t.Fatalf("corpus has %d cases, want at least 40", len(cases))
	}
	client := &http.Client{Timeout: 20 * time.Second}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var queuedAnswers int
			if c.sendFirst {
				now := time.Now()
				status, text, _ := send(t, client, e, c, now)
				if status != 200 || text != "queued\n" {
					t.Fatalf("first delivery: %d %q, want 200 queued", status, text)
				}
				queuedAnswers++
				c.sig = func([]byte, time.Time) string { return signedAt(primarySecret, 0)(c.body, now) }
			}
			status, text, h := send(t, client, e, c, time.Now())
			if status != c.want.status {
				t.Fatalf("status %d (%q), want %d", status, text, c.want.status)
			}
			if !strings.Contains(text, c.want.text) {
				t.Errorf("answer %q does not contain %q", text, c.want.text)
			}
			if status != 200 && status != 404 && len(text) > 80 {
				t.Errorf("reason of %d bytes, want a short one: %q", len(text), text)
			}
			for _, s := range customerData {
				if strings.Contains(text, s) {
					t.Errorf("answer echoes customer data %q", s)
				}
			}
			if status == http.StatusMethodNotAllowed && h.Get("Allow") != http.MethodPost {
				t.Errorf("405 with Allow %q", h.Get("Allow"))
			}
			if status != 404 && (!strings.HasPrefix(h.Get("Content-Type"), "text/plain") || h.Get("X-Content-Type-Options") != "nosniff") {
				t.Errorf("answer headers %v", h)
			}
			if text == "queued\n" {
				queuedAnswers++
			}

			recs := e.prod.produced()
			if len(recs) != queuedAnswers {
				t.Fatalf("%d records produced for %d queued answers", len(recs), queuedAnswers)
			}
			key := c.want.key
			if key == "" {
				key = piID
			}
			for _, r := range recs {
				checkRecord(t, r, ordersTopic, c.body, key)
			}
			checkLogs(t, e.logs.String())
		})
	}
}

// send delivers c and returns the status, body and headers of the answer.
func send(t *testing.T, client *http.Client, e *env, c request, now time.Time) (int, string, http.Header) {
	t.Helper()
	method, path := c.method, c.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = gateway.WebhookPath
	}
	var body io.Reader = bytes.NewReader(c.body)
	if c.chunked {
		body = io.MultiReader(bytes.NewReader(c.body)) // unknown length: sent chunked
	}
	if c.body == nil {
		body = nil
	}
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	switch c.contentType {
	case "":
		req.Header.Set("Content-Type", "application/json")
	case "-":
	default:
		req.Header.Set("Content-Type", c.contentType)
	}
	if !c.noSig {
		sig := c.sig
		if sig == nil {
			sig = signedAt(primarySecret, 0)
		}
		req.Header.Set(gateway.SignatureHeader, sig(c.body, now))
	}
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return resp.StatusCode, string(b), resp.Header
}
