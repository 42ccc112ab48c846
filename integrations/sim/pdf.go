package sim

import (
	"bytes"
	"fmt"
)

// labelPDF renders a one-page PDF (190 × 105 mm, PostNord's standard label)
// with the given lines in Helvetica. Characters outside WinAnsi (Japanese,
// for instance) print as '?': the label is for a person to open, the data
// itself is in the JSON lines.
func labelPDF(lines []string) []byte {
	var content bytes.Buffer
	content.WriteString("BT /F1 14 Tf 16 TL 30 260 Td\n")
	for i, l := range lines {
		if i == 1 {
			content.WriteString("/F1 11 Tf 14 TL\n")
		}
		content.WriteString("(")
		content.Write(pdfText(l))
		content.WriteString(") Tj T*\n")
	}
	content.WriteString("ET\n0 0 0 RG 2 w 20 20 499 258 re S\n")

	objects := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 539 298] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", content.Len(), content.String()),
	}
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
