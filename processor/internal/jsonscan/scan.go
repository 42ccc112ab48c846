// Package jsonscan walks JSON records of a known schema byte by byte,
// checking the syntax as it goes, keeps the values a reader asks for and
// skips every other value without building it. The console's state scan
// and the processor's state digest read with it (it reads a field only as
// encoding/json would, or reports that it does not answer for the record).
package jsonscan

import (
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// ErrScan: the scanner does not answer for the record; the caller decodes
// it in full.
var ErrScan = errors.New("jsonscan: record not scanned")

// maxDepth bounds the nesting the scan follows; deeper records are
// decoded in full.
const maxDepth = 200

// Scanner scans one record at a time; one per goroutine.
type Scanner struct {
	b     []byte
	pos   int
	depth int
	unq   []byte // scratch for unquoting
}

// Reset starts the scan of b.
func (sc *Scanner) Reset(b []byte) { sc.b, sc.pos, sc.depth = b, 0, 0 }

// Release drops the record (the scratch stays).
func (sc *Scanner) Release() { sc.b = nil }

// Pos is the offset of the next byte.
func (sc *Scanner) Pos() int { return sc.pos }

// Bytes are the bytes of the record from start to the current position.
func (sc *Scanner) Bytes(start int) []byte { return sc.b[start:sc.pos] }

// AtEnd reports whether only whitespace is left.
func (sc *Scanner) AtEnd() bool { return sc.Peek() == 0 && sc.pos == len(sc.b) }

// FieldNames are the unquoted names of quoted names, for Object's known
// list and Unknown's case check.
func FieldNames(ns ...[]byte) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = string(n[1 : len(n)-1])
	}
	return out
}

// ws skips whitespace.
func (sc *Scanner) ws() {
	// Records are written compact: most calls find no whitespace.
	if sc.pos < len(sc.b) && sc.b[sc.pos] > ' ' {
		return
	}
	for sc.pos < len(sc.b) {
		switch sc.b[sc.pos] {
		case ' ', '\t', '\n', '\r':
			sc.pos++
		default:
			return
		}
	}
}

// Peek returns the next byte after whitespace, 0 at the end.
func (sc *Scanner) Peek() byte {
	sc.ws()
	if sc.pos >= len(sc.b) {
		return 0
	}
	return sc.b[sc.pos]
}

// Expect consumes c, the next byte after whitespace, if it is there.
func (sc *Scanner) Expect(c byte) bool {
	if sc.Peek() != c {
		return false
	}
	sc.pos++
	return true
}

// RawString consumes a string and returns it as in the record, quotes
// included; esc reports an escape in it. Escapes are checked for form
// (\uXXXX with four hex digits); control characters are refused.
func (sc *Scanner) RawString() (raw []byte, esc bool, err error) {
	if sc.Peek() != '"' {
		return nil, false, ErrScan
	}
	start := sc.pos
	for i := start + 1; i < len(sc.b); {
		// Most bytes of a string are plain: pass them eight at a time,
		// then one by one up to the byte that ends the run.
		for i+8 <= len(sc.b) && !hasSpecial(binary.LittleEndian.Uint64(sc.b[i:])) {
			i += 8
		}
		for i < len(sc.b) && !strSpecial[sc.b[i]] {
			i++
		}
		if i >= len(sc.b) {
			break
		}
		c := sc.b[i]
		switch {
		case c == '"':
			sc.pos = i + 1
			return sc.b[start : i+1], esc, nil
		case c < 0x20:
			return nil, false, ErrScan
		case c == '\\':
			esc = true
			if i+1 >= len(sc.b) {
				return nil, false, ErrScan
			}
			switch sc.b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(sc.b) {
					return nil, false, ErrScan
				}
				for _, h := range sc.b[i+2 : i+6] {
					if !isHex(h) {
						return nil, false, ErrScan
					}
				}
				i += 6
			default:
				return nil, false, ErrScan
			}
		default:
			i++
		}
	}
	return nil, false, ErrScan
}

// strSpecial marks the bytes that end a plain run in a string: the quote,
// the backslash and control characters.
var strSpecial = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// hasSpecial reports whether one of the eight bytes of w is a quote, a
// backslash or a control character (below 0x20).
func hasSpecial(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote := w ^ (ones * '"')
	bslash := w ^ (ones * '\\')
	return ((quote-ones)&^quote|(bslash-ones)&^bslash|(w-ones*0x20)&^w)&highs != 0
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// Number consumes a JSON number and returns it as in the record.
func (sc *Scanner) Number() ([]byte, error) {
	sc.ws()
	b, start := sc.b, sc.pos
	i := start
	digits := func() bool {
		n := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return nil, ErrScan
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return nil, ErrScan
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return nil, ErrScan
		}
	}
	sc.pos = i
	return b[start:i], nil
}

// literal consumes true, false or null.
func (sc *Scanner) literal(lit string) error {
	if sc.Peek() == 0 || len(sc.b)-sc.pos < len(lit) || string(sc.b[sc.pos:sc.pos+len(lit)]) != lit {
		return ErrScan
	}
	sc.pos += len(lit)
	return nil
}

// Object reads an object, calling field with each name as it is in the
// record (quoted); field must consume the value. A name with an escape,
// a duplicate of a known name, stops the scan.
func (sc *Scanner) Object(known []string, field func(name []byte) error) error {
	if !sc.Expect('{') {
		return ErrScan
	}
	if sc.Expect('}') {
		return nil
	}
	if sc.depth++; sc.depth > maxDepth {
		return ErrScan
	}
	var seen uint64
	for {
		name, esc, err := sc.RawString()
		if err != nil || esc {
			return ErrScan // an escaped name is rare: let the decoder unquote it
		}
		if !sc.Expect(':') {
			return ErrScan
		}
		for i, k := range known {
			if len(k) == len(name)-2 && string(name[1:len(name)-1]) == k {
				if seen&(1<<i) != 0 {
					return ErrScan // a duplicate of a name read
				}
				seen |= 1 << i
				break
			}
		}
		if err := field(name); err != nil {
			return err
		}
		if sc.Expect(',') {
			continue
		}
		if sc.Expect('}') {
			sc.depth--
			return nil
		}
		return ErrScan
	}
}

// Unknown skips the value of a name the scan does not read, unless the
// name matches a known one regardless of case (encoding/json, which then
// decodes the record, matches names so).
func (sc *Scanner) Unknown(name []byte, known []string) error {
	n := name[1 : len(name)-1]
	for _, k := range known {
		if len(k) == len(n) && strings.EqualFold(string(n), k) {
			return ErrScan
		}
	}
	return sc.Skip()
}

// Skip skips a value the scan does not read, checking its syntax (a null
// too: decoded, it is the zero value).
func (sc *Scanner) Skip() error {
	switch c := sc.Peek(); {
	case c == '"':
		_, _, err := sc.RawString()
		return err
	case c == '{':
		return sc.Object(nil, func([]byte) error { return sc.Skip() })
	case c == '[':
		sc.pos++
		if sc.Expect(']') {
			return nil
		}
		if sc.depth++; sc.depth > maxDepth {
			return ErrScan
		}
		for {
			if err := sc.Skip(); err != nil {
				return err
			}
			if sc.Expect(',') {
				continue
			}
			if sc.Expect(']') {
				sc.depth--
				return nil
			}
			return ErrScan
		}
	case c == 't':
		return sc.literal("true")
	case c == 'f':
		return sc.literal("false")
	case c == 'n':
		return sc.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		_, err := sc.Number()
		return err
	}
	return ErrScan
}

// SkipKind skips a value that must be k ('"', '[', '{', '0' a number) or
// null.
func (sc *Scanner) SkipKind(k byte) error {
	c := sc.Peek()
	if c == '-' || c >= '0' && c <= '9' {
		c = '0'
	}
	if c != k && c != 'n' {
		return ErrScan
	}
	return sc.Skip()
}

// strBytes reads a string, unquoted (into the scratch when it has an
// escape: valid until the next read). Invalid UTF-8 is left to the
// decoder (which replaces it); the scan lets it pass only in values it
// skips.
func (sc *Scanner) strBytes() ([]byte, error) {
	raw, esc, err := sc.RawString()
	if err != nil {
		return nil, err
	}
	v := raw[1 : len(raw)-1]
	if esc {
		sc.unq, err = jsontext.AppendUnquote(sc.unq[:0], raw)
		if err != nil {
			return nil, ErrScan
		}
		v = sc.unq
	}
	if !utf8.Valid(v) {
		return nil, ErrScan
	}
	return v, nil
}

// Str reads a string.
func (sc *Scanner) Str() (string, error) {
	v, err := sc.strBytes()
	if err != nil {
		return "", err
	}
	return string(v), nil
}

// Int reads an integer.
func (sc *Scanner) Int() (int64, error) {
	v, err := sc.Number()
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, ErrScan
	}
	return n, nil
}

// Bool reads true or false.
func (sc *Scanner) Bool() (bool, error) {
	switch sc.Peek() {
	case 't':
		return true, sc.literal("true")
	case 'f':
		return false, sc.literal("false")
	}
	return false, ErrScan
}

// Time reads a time as encoding/json reads one (strict RFC 3339).
func (sc *Scanner) Time() (time.Time, error) {
	v, err := sc.strBytes()
	if err != nil {
		return time.Time{}, err
	}
	var t time.Time
	if err := t.UnmarshalText(v); err != nil {
		return time.Time{}, ErrScan
	}
	return t, nil
}

// Strings reads an array of strings; an empty one is empty, not nil, as
// decoded.
func (sc *Scanner) Strings() ([]string, error) {
	if !sc.Expect('[') {
		return nil, ErrScan
	}
	out := []string{}
	if sc.Expect(']') {
		return out, nil
	}
	for {
		s, err := sc.Str()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		if sc.Expect(',') {
			continue
		}
		if sc.Expect(']') {
			return out, nil
		}
		return nil, ErrScan
	}
}

// ObjectString reads the string field want of a JSON object whose fields
// are all strings (fields; a step result such as integrations.Shipment),
// as json.Unmarshal into that struct would; ok is false when the scan
// does not answer for raw (then decode it): a field of the struct that
// is not a string, a name matching one only regardless of case, a
// duplicate or escaped name, invalid UTF-8 in one of them, or invalid
// JSON.
func ObjectString(raw []byte, fields []string, want string) (v string, ok bool) {
	sc := Scanner{b: raw}
	err := sc.Object(fields, func(name []byte) error {
		n := name[1 : len(name)-1]
		if !slices.Contains(fields, string(n)) {
			return sc.Unknown(name, fields)
		}
		s, err := sc.strBytes()
		if err == nil && string(n) == want {
			v = string(s)
		}
		return err
	})
	if err != nil || sc.Peek() != 0 {
		return "", false
	}
	return v, true
}
