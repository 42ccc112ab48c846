package netvisor

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// ISO-8859-15 is ISO-8859-1 except for eight code points.
var (
	iso885915Special = map[byte]rune{0xa4: '€', 0xa6: 'Š', 0xa8: 'š', 0xb4: 'Ž', 0xb8: 'ž', 0xbc: 'Œ', 0xbd: 'œ', 0xbe: 'Ÿ'}
	iso885915Reverse = func() map[rune]byte {
		m := map[rune]byte{}
		for b, r := range iso885915Special {
			m[r] = b
		}
		return m
	}()
)

// encodeISO885915 converts an XML document from UTF-8 to ISO-8859-15;
// characters outside it become numeric character references (&#N;), which
// XML reads back as the same character. The document must not contain such
// characters inside names or comments (ours holds them only in text and
// attribute values).
func encodeISO885915(doc []byte) []byte {
	out := make([]byte, 0, len(doc))
	for _, r := range string(doc) {
		switch {
		case r < 0xa0:
			out = append(out, byte(r))
		case r < 0x100 && !isReplacedLatin1(r):
			out = append(out, byte(r))
		default:
			if b, ok := iso885915Reverse[r]; ok {
				out = append(out, b)
			} else {
				out = fmt.Appendf(out, "&#%d;", r)
			}
		}
	}
	return out
}

// isReplacedLatin1 reports the Latin-1 characters whose code points
// ISO-8859-15 uses for other characters.
func isReplacedLatin1(r rune) bool {
	_, ok := iso885915Special[byte(r)]
	return ok
}

func decodeISO885915(b []byte, latin9 bool) string {
	var sb strings.Builder
	for _, c := range b {
		if r, ok := iso885915Special[c]; ok && latin9 {
			sb.WriteRune(r)
		} else {
			sb.WriteRune(rune(c))
		}
	}
	return sb.String()
}

// unmarshal decodes a Netvisor reply: UTF-8, or ISO-8859-15/1 as declared
// in the XML declaration, or undeclared bytes that are not valid UTF-8
// (read as ISO-8859-15).
func unmarshal(raw []byte, v any) error {
	if !hasDeclaration(raw) && !utf8.Valid(raw) {
		raw = []byte(decodeISO885915(raw, true))
	}
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.CharsetReader = func(label string, input io.Reader) (io.Reader, error) {
		l := strings.ToLower(label)
		switch l {
		case "iso-8859-15", "latin-9", "latin9", "iso-8859-1", "latin1", "latin-1", "windows-1252":
			b, err := io.ReadAll(input)
			if err != nil {
				return nil, err
			}
			return strings.NewReader(decodeISO885915(b, strings.Contains(l, "15") || strings.Contains(l, "9"))), nil
		}
		return nil, fmt.Errorf("unsupported charset %q", label)
	}
	return d.Decode(v)
}

func hasDeclaration(b []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n\ufeff"), []byte("<?xml"))
}
