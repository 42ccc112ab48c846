package topics

import (
	"encoding/json"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// v1Options make the JSON v2 decoder read as encoding/json does (names
// matched without regard to case, duplicate names and invalid UTF-8
// accepted, ...).
var v1Options = jsonv1.DefaultOptionsV1()

// Unmarshal is json.Unmarshal with the JSON v2 decoder in its v1 mode: the
// same result, two to three times faster with a fraction of the
// allocations on the processor's records and results (measured by
// BenchmarkUnmarshal). On an error, encoding/json decodes again so the
// error reads as before.
func Unmarshal(b []byte, v any) error {
	if err := jsonv2.Unmarshal(b, v, v1Options); err != nil {
		return json.Unmarshal(b, v)
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaped as encoding/json
// escapes it: control characters as \b, \f, \n, \r, \t or \u00XX, invalid
// UTF-8 as \ufffd, U+2028 and U+2029 as \u2028 and \u2029, and, with
// escapeHTML (encoding/json's default; an Encoder's SetEscapeHTML(false)
// turns it off), '<', '>' and '&' as \u003c, \u003e and \u0026. The
// gateway's envelope and the processor's state encoders write their
// strings with it.
func AppendString(b []byte, s string, escapeHTML bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!escapeHTML || c != '<' && c != '>' && c != '&') {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
