package parse

import (
	"slices"
	"strings"
	"testing"
)

// Web-form notifications (a contact-form plugin's table of fields) and
// Outlook's HTML (cells holding MsoNormal paragraphs, &nbsp; between
// words) lay a report out as table cells: the cells must not run
// together, or the IP and the hash after their labels are lost.
func TestHTMLTableCellsKeepWordsApart(t *testing.T) {
	const hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	webForm := `<html><body><table width="99%" border="0" cellpadding="1" cellspacing="0" bgcolor="#EAEAEA"><tr><td>
<table width="100%" border="0" cellpadding="5" cellspacing="0" bgcolor="#FFFFFF">
<tr bgcolor="#EAF2FA"><td colspan="2"><font style="font-family:sans-serif;font-size:12px"><strong>Affected host</strong></font></td></tr>
<tr bgcolor="#FFFFFF"><td width="20">&nbsp;</td><td><font style="font-family:sans-serif;font-size:12px">192.0.2.201</font></td></tr>
<tr><th>SHA256</th><td>` + strings.ToUpper(hash) + `</td></tr>
<tr><td>Contact</td><td>reporter@reporter.example</td></tr>
</table></td></tr></table></body></html>`
	outlook := `<html xmlns:o="urn:schemas-microsoft-com:office:office"><head><style>p.MsoNormal{margin:0cm}</style></head><body lang=EN-US>
<div class=WordSection1><table class=MsoNormalTable border=1 cellspacing=0 cellpadding=0>
<tr><td width=200 valign=top><p class=MsoNormal><b>Affected&nbsp;host</b><o:p></o:p></p></td><td width=400 valign=top><p class=MsoNormal>192.0.2.201<o:p></o:p></p></td></tr>
<tr><td width=200 valign=top><p class=MsoNormal><b>SHA256</b></p></td><td width=400 valign=top><p class=MsoNormal>` + hash + `</p></td></tr>
</table><p class=MsoNormal>Regards,<br>Reporter</p></div></body></html>`
	for name, body := range map[string]string{"web form": webForm, "outlook": outlook} {
		raw := "From: reporter@reporter.example\r\nSubject: Phishing report\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + body
		rep, err := Parse([]byte(raw), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(rep.Text, "host192") || strings.Contains(strings.ToLower(rep.Text), "sha256"+hash[:6]) {
			t.Errorf("%s: cells run together:\n%s", name, rep.Text)
		}
		if !slices.Contains(rep.Indicators.IPv4, "192.0.2.201") || !slices.Contains(rep.Indicators.SHA256, hash) {
			t.Errorf("%s: indicators %+v from\n%s", name, rep.Indicators, rep.Text)
		}
		if strings.Contains(rep.Text, "Regards,Reporter") {
			t.Errorf("%s: <br> joined words: %q", name, rep.Text)
		}
	}
}
