package sim

import (
	"bytes"
	"testing"
)

func TestLabelRendersNonLatinNames(t *testing.T) {
	pdf := labelPDF([]string{"PostNord  00373500000000000010", "Service 19   Ref OF-X", "", "To: 佐藤 花子", "梅田3-1-3", "530-0001 大阪市北区", "JP",
		"Иван Петров", "김민준", "Åsa (Ö)"}, "JP")
	checkPDF(t, pdf)
	for _, want := range []string{
		"/F1 11 Tf (To: ) Tj\n/F2 11 Tf <4F5085E4002082B15B50> Tj",
		"/F2 11 Tf <68857530> Tj\n/F1 11 Tf (3-1-3) Tj",
		"/F2 11 Tf <041804320430043D0020041F043504420440043E0432> Tj",
		"/F3 11 Tf <AE40BBFCC900> Tj",
		"/F1 11 Tf (\xc5sa \\(\xd6\\)) Tj",
		"/BaseFont /KozMinPro-Regular-UniJIS-UCS2-H /Encoding /UniJIS-UCS2-H",
		"/Ordering (Korea1)",
	} {
		if !bytes.Contains(pdf, []byte(want)) {
			t.Errorf("label lacks %q", want)
		}
	}
	if bytes.Contains(pdf, []byte("(To: ?")) || bytes.Contains(pdf, []byte("??")) {
		t.Errorf("label still prints non-Latin names as '?'")
	}
	// A Chinese address gets the simplified-Chinese font.
	if cn := labelPDF([]string{"To: 王伟"}, "CN"); !bytes.Contains(cn, []byte("/Encoding /UniGB-UCS2-H")) {
		t.Errorf("a CN label does not use Adobe-GB1")
	}
}
