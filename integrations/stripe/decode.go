package stripe

import (
	"encoding/json"
	"errors"
	"reflect"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/form"
)

// decodingBackend is stripe-go's backend with its responses decoded by the
// JSON v2 decoder in its v1 mode instead of encoding/json.
//
// stripe-go decodes a response with encoding/json, and every expandable
// object in it (a PaymentIntent, a TaxRate, a Discount, ...) has an
// UnmarshalJSON method that decodes it again with encoding/json, so an
// expanded Checkout Session (three to four levels of such objects) is
// scanned and decoded about once per level: it was a tenth of the
// processor's CPU in the drain benchmark. Here the backend hands stripe-go
// a response value that keeps nothing (stripe-go still checks that the
// body is JSON), and the body (APIResponse.RawJSON) is decoded into the
// caller's value in one pass, the expandable types of an order's
// responses by expandable below, the same way as their methods.
//
// The result is the one encoding/json gives: decodeResponse falls back to
// encoding/json whenever the v2 decoder reports an error, so errors are
// encoding/json's too, and TestDecodeAgrees and FuzzDecodeAgrees hold the
// two to each other.
type decodingBackend struct {
	stripego.Backend
}

// Call is stripe-go's Call (GET of one object, e.g. a PaymentIntent or a
// Checkout Session) with the response decoded by decodeResponse.
func (b decodingBackend) Call(method, path, key string, params stripego.ParamsContainer, v stripego.LastResponseSetter) error {
	var c captured
	if err := b.Backend.Call(method, path, key, params, &c); err != nil {
		return err
	}
	return c.into(v)
}

// CallRaw is stripe-go's CallRaw (the list calls) with the response decoded
// by decodeResponse.
func (b decodingBackend) CallRaw(method, path, key string, body *form.Values, params *stripego.Params, v stripego.LastResponseSetter) error {
	var c captured
	if err := b.Backend.CallRaw(method, path, key, body, params, &c); err != nil {
		return err
	}
	return c.into(v)
}

// captured is the response value decodingBackend gives stripe-go: it keeps
// the response, whose RawJSON is the body, and decodes nothing.
type captured struct {
	resp *stripego.APIResponse
}

func (c *captured) SetLastResponse(r *stripego.APIResponse) { c.resp = r }

// UnmarshalJSON keeps nothing: the body is decoded once, by into.
func (*captured) UnmarshalJSON([]byte) error { return nil }

// into decodes the captured body into v and gives v the response, as
// stripe-go does.
func (c *captured) into(v stripego.LastResponseSetter) error {
	if c.resp == nil {
		return errors.New("stripe: no response recorded")
	}
	if err := decodeResponse(c.resp.RawJSON, v); err != nil {
		return err
	}
	v.SetLastResponse(c.resp)
	return nil
}

// decodeResponse decodes a Stripe response body into v as encoding/json
// (stripe-go) does.
func decodeResponse(body []byte, v any) error {
	if jsonv2.Unmarshal(body, v, decodeOptions) == nil {
		return nil
	}
	// encoding/json's own result and error, from the value as it was
	// (stripe-go's values start empty).
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv.Elem().SetZero()
	}
	return json.Unmarshal(body, v)
}

// Aliases of stripe-go's expandable types without their UnmarshalJSON
// methods, so the v2 decoder decodes their fields itself.
type (
	paymentIntentFields stripego.PaymentIntent
	chargeFields        stripego.Charge
	taxRateFields       stripego.TaxRate
	discountFields      stripego.Discount
	couponFields        stripego.Coupon
	promotionCodeFields stripego.PromotionCode
	shippingRateFields  stripego.ShippingRate
	priceFields         stripego.Price
	productFields       stripego.Product
)

// decodeOptions is encoding/json's behaviour (jsonv1.DefaultOptionsV1) with
// the expandable types of an order's responses decoded in the same pass.
// The other expandable types stripe-go has come as ids in these responses
// and keep their own methods.
var decodeOptions = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsonv2.WithUnmarshalers(jsonv2.JoinUnmarshalers(
	expandable(func(v *stripego.PaymentIntent) (*string, *paymentIntentFields) {
		return &v.ID, (*paymentIntentFields)(v)
	}),
	expandable(func(v *stripego.Charge) (*string, *chargeFields) { return &v.ID, (*chargeFields)(v) }),
	expandable(func(v *stripego.TaxRate) (*string, *taxRateFields) { return &v.ID, (*taxRateFields)(v) }),
	expandable(func(v *stripego.Discount) (*string, *discountFields) { return &v.ID, (*discountFields)(v) }),
	expandable(func(v *stripego.Coupon) (*string, *couponFields) { return &v.ID, (*couponFields)(v) }),
	expandable(func(v *stripego.PromotionCode) (*string, *promotionCodeFields) {
		return &v.ID, (*promotionCodeFields)(v)
	}),
	expandable(func(v *stripego.ShippingRate) (*string, *shippingRateFields) { return &v.ID, (*shippingRateFields)(v) }),
	expandable(func(v *stripego.Price) (*string, *priceFields) { return &v.ID, (*priceFields)(v) }),
	expandable(func(v *stripego.Product) (*string, *productFields) { return &v.ID, (*productFields)(v) }),
)))

// expandable decodes an expandable type T as its stripe-go UnmarshalJSON
// method does: a JSON string is the object's id (stripe.ParseID: the text
// between the quotes, as it stands), anything else is decoded into T's
// fields (through A, T without the method).
func expandable[T, A any](parts func(*T) (*string, *A)) *jsonv2.Unmarshalers {
	return jsonv2.UnmarshalFromFunc(func(dec *jsontext.Decoder, v *T) error {
		id, fields := parts(v)
		if dec.PeekKind() != '"' {
			return jsonv2.UnmarshalDecode(dec, fields)
		}
		raw, err := dec.ReadValue()
		if err != nil {
			return err
		}
		*id = string(raw[1 : len(raw)-1])
		return nil
	})
}
