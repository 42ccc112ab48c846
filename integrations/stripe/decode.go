package stripe

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/form"
)

// decodingBackend is stripe-go's backend with the responses of GET
// requests decoded by the JSON v2 decoder in its v1 mode instead of
// encoding/json.
//
// stripe-go decodes a response with encoding/json, and every expandable
// object in it (a PaymentIntent, a TaxRate, a Discount, ...) has an
// UnmarshalJSON method that decodes it again with encoding/json, so an
// expanded Checkout Session (three to four levels of such objects) is
// scanned and decoded about once per level: it was a tenth of the
// processor's CPU in the drain benchmark. Here a GET is made as stripe-go
// makes it (its NewRequest: URL, query, headers, key), sent with its HTTP
// client, and an error status becomes stripe-go's *stripe.Error
// (ResponseToError); the body of a success is decoded into the caller's
// value in one pass, the expandable types of an order's responses by
// expandable below, the same way as their methods. stripe-go's network
// retries are off for this client, so it sends each request once, as this
// does. Other methods go to stripe-go unchanged.
//
// The result is the one encoding/json gives: decodeResponse falls back to
// encoding/json whenever the v2 decoder reports an error, so errors are
// encoding/json's too, and TestDecodeAgrees and FuzzDecodeAgrees hold the
// two to each other.
type decodingBackend struct {
	*stripego.BackendImplementation
}

// Call is stripe-go's Call (GET of one object, e.g. a PaymentIntent or a
// Checkout Session): the parameters as form values (form.AppendTo, as
// stripe-go encodes them), then CallRaw.
func (b decodingBackend) Call(method, path, key string, params stripego.ParamsContainer, v stripego.LastResponseSetter) error {
	if rv := reflect.ValueOf(params); method != http.MethodGet || rv.Kind() != reflect.Pointer || rv.IsNil() {
		return b.BackendImplementation.Call(method, path, key, params, v)
	}
	values := &form.Values{}
	form.AppendTo(values, params)
	return b.CallRaw(method, path, key, values, params.GetParams(), v)
}

// CallRaw is stripe-go's CallRaw (the list calls use it directly) with
// the response of a GET decoded by decodeResponse; the form goes into the
// query, as stripe-go puts it.
func (b decodingBackend) CallRaw(method, path, key string, values *form.Values, params *stripego.Params, v stripego.LastResponseSetter) error {
	if method != http.MethodGet {
		return b.BackendImplementation.CallRaw(method, path, key, values, params, v)
	}
	if values != nil && !values.Empty() {
		path += "?" + values.Encode()
	}
	req, err := b.NewRequest(method, path, key, "application/x-www-form-urlencoded", params)
	if err != nil {
		return err
	}
	res, err := b.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return err
	}
	if res.StatusCode >= 400 {
		return b.ResponseToError(res, body)
	}
	if err := decodeResponse(body, v); err != nil {
		// Not the body: it holds customer data.
		return fmt.Errorf("stripe: response (status %d) not understood: %w", res.StatusCode, err)
	}
	v.SetLastResponse(&stripego.APIResponse{
		Header:         res.Header,
		IdempotencyKey: res.Header.Get("Idempotency-Key"),
		RawJSON:        body,
		RequestID:      res.Header.Get("Request-Id"),
		Status:         res.Status,
		StatusCode:     res.StatusCode,
	})
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
