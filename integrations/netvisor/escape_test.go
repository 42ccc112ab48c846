package netvisor

import (
	"bytes"
	"encoding/xml"
	"testing"
)

// escapeSeeds are texts at the edges of escapeText's plain ASCII path.
var escapeSeeds = []string{
	"", "Drottninggatan 5", "111 51", "OF-1042", "1797.00", "a<b", "a>b", "Smith & Sons", "O'Brien", `say "hi"`,
	"tab\there", "line\nbreak", "cr\rhere", "nul\x00", "bell\x07", "del\x7f", "Åsa Lindström", "€ 5", "\xff\xfe",
	"\u2028", "\ufffd", "\U0001F600",
}

func TestEscapeTextAsEncodingXML(t *testing.T) {
	for _, s := range escapeSeeds {
		var want, got bytes.Buffer
		_ = xml.EscapeText(&want, []byte(s))
		escapeText(&got, s)
		if got.String() != want.String() {
			t.Errorf("escapeText(%q) = %q, xml.EscapeText writes %q", s, got.String(), want.String())
		}
	}
	// Written by hand: the plain path and an escaped one.
	var b bytes.Buffer
	w := elementWriter(&b)
	w("Country", "SE", "type", "ISO-3166")
	w("Name", "Smith & Sons <AB>")
	w("Empty", "")
	if want := `<Country type="ISO-3166">SE</Country><Name>Smith &amp; Sons &lt;AB&gt;</Name>`; b.String() != want {
		t.Fatalf("elements %s, want %s", b.String(), want)
	}
}

func FuzzEscapeText(f *testing.F) {
	for _, s := range escapeSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want, got bytes.Buffer
		_ = xml.EscapeText(&want, []byte(s))
		escapeText(&got, s)
		if got.String() != want.String() {
			t.Fatalf("escapeText(%q) = %q, xml.EscapeText writes %q", s, got.String(), want.String())
		}
	})
}
