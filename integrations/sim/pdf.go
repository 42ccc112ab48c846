package sim

import (
	"bytes"
	"fmt"
	"unicode"
	"unicode/utf16"
)

// labelPDF renders a one-page PDF (190 × 105 mm, PostNord's standard label)
// with the given lines. Latin text is in Helvetica (WinAnsi); every other
// character of the Basic Multilingual Plane is in one of the CJK fonts
// every PDF reader with Asian font support has without embedding
// (PDF 32000-1 §9.7.5.2 and Adobe's predefined CMaps): Hangul in the
// Korean one (Adobe-Korea1), the rest — kana, Han, Greek, Cyrillic — in
// the one for the destination country (Adobe-GB1 for CN and SG, Adobe-CNS1
// for TW, HK and MO, Adobe-Japan1 otherwise, which also holds the Greek
// and Cyrillic alphabets). Names in those scripts show as written, not as
// '?'. Scripts none of these fonts hold (Arabic, Hebrew, Thai, …) and
// characters beyond the BMP still print as '?': rendering them needs an
// embedded font and text shaping, which this label does not do; the data
// itself is in the JSON lines.
func labelPDF(lines []string, country string) []byte {
	cjk := cjkFontFor(country)
	var content bytes.Buffer
	content.WriteString("BT 30 260 Td 16 TL\n")
	for i, l := range lines {
		size := 11
		if i == 0 {
			size = 14
		} else if i == 1 {
			content.WriteString("14 TL\n")
		}
		for _, r := range textRuns(l) {
			font := "F1"
			switch r.kind {
			case runCJK:
				font = "F2"
			case runHangul:
				font = "F3"
			}
			fmt.Fprintf(&content, "/%s %d Tf ", font, size)
			if r.kind == runLatin {
				content.WriteString("(")
				content.Write(pdfText(r.text))
				content.WriteString(") Tj\n")
			} else {
				content.WriteString("<")
				for _, u := range utf16.Encode([]rune(r.text)) {
					fmt.Fprintf(&content, "%04X", u)
				}
				content.WriteString("> Tj\n")
			}
		}
		content.WriteString("T*\n")
	}
	content.WriteString("ET\n0 0 0 RG 2 w 20 20 499 258 re S\n")

	korean := cjkFonts["KR"]
	objects := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 539 298] /Resources << /Font << /F1 4 0 R /F2 6 0 R /F3 9 0 R >> >> /Contents 5 0 R >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", content.Len(), content.String()),
	}
	objects = append(objects, cjk.objects(7)...)     // 6, 7, 8
	objects = append(objects, korean.objects(10)...) // 9, 10, 11
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objects))
	for i, o := range objects {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objects)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objects)+1, xref)
	return b.Bytes()
}

// cjkFont is one of the standard CJK fonts with its UCS-2 CMap.
type cjkFont struct{ name, cmap, ordering, supplement string }

var cjkFonts = map[string]cjkFont{
	"JP": {"KozMinPro-Regular", "UniJIS-UCS2-H", "Japan1", "4"},
	"CN": {"STSong-Light", "UniGB-UCS2-H", "GB1", "4"},
	"TW": {"MSung-Light", "UniCNS-UCS2-H", "CNS1", "4"},
	"KR": {"HYSMyeongJo-Medium", "UniKS-UCS2-H", "Korea1", "1"},
}

func cjkFontFor(country string) cjkFont {
	switch country {
	case "CN", "SG":
		return cjkFonts["CN"]
	case "TW", "HK", "MO":
		return cjkFonts["TW"]
	}
	return cjkFonts["JP"]
}

// objects are the Type0 font, its CIDFont (object number cid) and the
// CIDFont's descriptor (cid+1).
func (f cjkFont) objects(cid int) []string {
	return []string{
		fmt.Sprintf("<< /Type /Font /Subtype /Type0 /BaseFont /%s-%s /Encoding /%s /DescendantFonts [%d 0 R] >>", f.name, f.cmap, f.cmap, cid),
		fmt.Sprintf("<< /Type /Font /Subtype /CIDFontType0 /BaseFont /%s /CIDSystemInfo << /Registry (Adobe) /Ordering (%s) /Supplement %s >> /FontDescriptor %d 0 R /DW 1000 >>",
			f.name, f.ordering, f.supplement, cid+1),
		fmt.Sprintf("<< /Type /FontDescriptor /FontName /%s /Flags 6 /FontBBox [-200 -300 1200 1100] /ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 740 /StemV 80 >>", f.name),
	}
}

type runKind int

const (
	runLatin runKind = iota
	runCJK
	runHangul
)

type textRun struct {
	kind runKind
	text string
}

// textRuns splits s into runs of one font each. Spaces and punctuation
// stay in the run they are in.
func textRuns(s string) []textRun {
	var runs []textRun
	for _, r := range s {
		k := runKindOf(r)
		if len(runs) > 0 && (runs[len(runs)-1].kind == k || (r == ' ' && runs[len(runs)-1].kind != runLatin)) {
			if r == ' ' {
				k = runs[len(runs)-1].kind
			}
			runs[len(runs)-1].text += string(r)
			continue
		}
		runs = append(runs, textRun{kind: k, text: string(r)})
	}
	return runs
}

func runKindOf(r rune) runKind {
	switch {
	case winAnsi(r):
		return runLatin
	case unicode.Is(unicode.Hangul, r):
		return runHangul
	case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Greek, unicode.Cyrillic) ||
		(r >= 0x3000 && r <= 0x303f) || (r >= 0xff00 && r <= 0xffef):
		return runCJK
	}
	return runLatin // printed as '?'
}

func winAnsi(r rune) bool {
	if r >= 0x20 && r < 0x7f || r >= 0xa0 && r <= 0xff {
		return true
	}
	_, ok := winAnsiExtra[r]
	return ok
}

// winAnsiExtra maps the typographic characters WinAnsi has outside Latin-1.
var winAnsiExtra = map[rune]byte{'€': 0x80, '‚': 0x82, '„': 0x84, '…': 0x85, '‘': 0x91, '’': 0x92, '“': 0x93, '”': 0x94, '–': 0x96, '—': 0x97, 'Š': 0x8a, 'š': 0x9a, 'Ž': 0x8e, 'ž': 0x9e}

// pdfText encodes s as a WinAnsi PDF string body, escaping ( ) and \.
func pdfText(s string) []byte {
	var out []byte
	for _, r := range s {
		var c byte
		switch {
		case r == '(' || r == ')' || r == '\\':
			out = append(out, '\\', byte(r))
			continue
		case r >= 0x20 && r < 0x7f, r >= 0xa0 && r <= 0xff:
			c = byte(r)
		default:
			if x, ok := winAnsiExtra[r]; ok {
				c = x
			} else {
				c = '?'
			}
		}
		out = append(out, c)
	}
	return out
}
