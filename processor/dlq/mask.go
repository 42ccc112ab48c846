package dlq

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Masked replaces a masked value.
const Masked = "***"

// piiKeys are the JSON object keys whose values are customer data: Stripe's
// customer_details, shipping_details, billing_details, shipping and address
// objects and their fields, and the order model's customer fields. A key
// holding an object or array has every value inside masked.
var piiKeys = map[string]bool{
	"email": true, "customer_email": true, "receipt_email": true,
	"name": true, "customer_name": true, "first_name": true, "last_name": true,
	"phone": true, "customer_phone": true,
	"line1": true, "line2": true, "postal_code": true, "city": true,
	"address": true, "customer_details": true, "shipping_details": true,
	"billing_details": true, "shipping": true,
	"tax_ids": true, "ip_address": true,
}

// "customer" is masked too when it holds an object (the order model's
// customer); in Stripe objects it is an id (cus_...) and stays readable.

// IsPIIKey reports whether values under a JSON object key are masked.
func IsPIIKey(k string) bool { return piiKeys[strings.ToLower(k)] }

// MaskJSON returns doc with the value of every customer-data key masked:
// strings and numbers become "***", objects and arrays keep their shape with
// every scalar inside masked, null and booleans stay. A document that is not
// JSON is returned as the single string "***".
func MaskJSON(doc []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return []byte(`"` + Masked + `"`)
	}
	b, err := marshal(mask(v, false))
	if err != nil {
		return []byte(`"` + Masked + `"`)
	}
	return b
}

func mask(v any, all bool) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			_, isObject := e.(map[string]any)
			x[k] = mask(e, all || IsPIIKey(k) || (isObject && strings.EqualFold(k, "customer")))
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = mask(e, all)
		}
		return x
	case string:
		if all && x != "" {
			return Masked
		}
		return x
	case json.Number:
		if all {
			return Masked
		}
		return x
	default: // nil, bool
		return x
	}
}

// marshal encodes without HTML escaping.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// Indent pretty-prints JSON for people; invalid JSON is returned unchanged.
func Indent(doc []byte) []byte {
	var buf bytes.Buffer
	if err := json.Indent(&buf, doc, "", "  "); err != nil {
		return doc
	}
	return buf.Bytes()
}
