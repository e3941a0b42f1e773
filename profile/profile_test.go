package profile

import (
	"strings"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/configs"
)

func team() configs.Team {
	t := configs.Defaults().Team
	t.Phone = "+81 3 1234 5678"
	t.Members = []string{"Hanako Yamada (lead)"}
	t.Mission = "Coordinate incident response for Example."
	return t
}

// TestRFC2350Sections: every section and subsection of RFC 2350's template
// is there, in order, with the configured facts; what is not configured
// says so instead of vanishing.
func TestRFC2350Sections(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	out := RFC2350(team(), []Key{{Fingerprint: "0123456789ABCDEF0123456789ABCDEF01234567", UserID: "Example CSIRT <csirt@example.org>", URL: "https://csirt.example.org/pgp-key.asc"}}, now)
	want := []string{"1. Document Information", "1.1. Date of Last Update", "2026-11-30", "1.2. Distribution List", "1.3. Locations", "https://csirt.example.org/rfc2350.txt",
		"1.4. Authenticating", "2. Contact Information", "2.1. Name of the Team", "Example CSIRT", "2.2. Address", "2.3. Time Zone", "UTC",
		"2.4. Telephone Number", "+81 3 1234 5678", "2.5. Facsimile", "2.6. Other Telecommunication", "2.7. Electronic Mail Address", "csirt@example.org",
		"2.8. Public Keys", "0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567", "2.9. Team Members", "Hanako Yamada", "2.10. Other Information",
		"2.11. Points of Customer Contact", "3. Charter", "3.1. Mission Statement", "Coordinate incident response", "3.2. Constituency",
		"3.3. Sponsorship", "3.4. Authority", "4. Policies", "4.1. Types of Incidents", "4.2. Co-operation", "4.3. Communication and Authentication",
		"5. Services", "6. Incident Reporting Forms", "7. Disclaimers"}
	pos := 0
	for _, w := range want {
		i := strings.Index(out[pos:], w)
		if i < 0 {
			t.Fatalf("%q missing or out of order\n%s", w, out)
		}
		pos += i
	}
	if !strings.Contains(out, "3.4. Authority\n\n   Not stated.") {
		t.Fatal("an unset field must say it is not stated")
	}
}

func TestMissingMandatory(t *testing.T) {
	tm := team()
	if m := Missing(tm); len(m) != 0 {
		t.Fatalf("defaults: %v", m)
	}
	tm.Constituency, tm.Address = "", ""
	m := Missing(tm)
	if len(m) != 2 || m[0] != "team.address" || m[1] != "team.constituency" {
		t.Fatalf("missing: %v", m)
	}
}

// TestSecurityTxtFields: RFC 9116's fields, one per line, Expires in
// RFC 3339 and in the future.
func TestSecurityTxtFields(t *testing.T) {
	exp := time.Date(2027, 5, 29, 0, 0, 0, 0, time.UTC)
	out := SecurityTxt(team(), "https://csirt.example.org/pgp-key.asc", exp)
	fields := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			t.Fatalf("not a field line: %q", l)
		}
		fields[k] = append(fields[k], v)
	}
	check := map[string]string{"Expires": "2027-05-29T00:00:00Z", "Encryption": "https://csirt.example.org/pgp-key.asc",
		"Preferred-Languages": "en, ja", "Canonical": "https://csirt.example.org/.well-known/security.txt", "Policy": "https://csirt.example.org/rfc2350.txt"}
	for k, v := range check {
		if len(fields[k]) != 1 || fields[k][0] != v {
			t.Errorf("%s: %q, want %q", k, fields[k], v)
		}
	}
	if len(fields["Contact"]) != 2 || fields["Contact"][0] != "mailto:csirt@example.org" || fields["Contact"][1] != "tel:+81-3-1234-5678" {
		t.Errorf("Contact: %q", fields["Contact"])
	}
}

// TestWKDHash: the draft's example, and what GnuPG's gpg-wks-client prints
// for the default team address.
func TestWKDHash(t *testing.T) {
	for addr, want := range map[string]string{
		"Joe.Doe@Example.ORG": "iy9q119eutrkn8s1mk4r39qejnbu3n5q",
		"csirt@example.org":   "ahrnamnoi5m8jmw373g6cdiau7e3nf9w",
	} {
		if got, _ := WKDHash(addr); got != want {
			t.Errorf("%s: %s, want %s", addr, got, want)
		}
	}
}

// TestRFC2350Japanese: the Japanese rendering uses Japanese headings and
// the team.ja texts, falling back to English for what has none.
func TestRFC2350Japanese(t *testing.T) {
	tm := team()
	tm.Ja.Mission = "国内のインシデント対応を調整する。"
	out := RFC2350Lang(tm, nil, time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), "ja")
	for _, w := range []string{"1. 文書情報", "2.7. 電子メールアドレス", "3.1. ミッション\n\n   国内のインシデント対応を調整する。", "3.4. 権限\n\n   記載なし。",
		"/rfc2350.ja.txt", "7. 免責事項", "Hanako Yamada"} {
		if !strings.Contains(out, w) {
			t.Fatalf("%q missing:\n%s", w, out)
		}
	}
	if got := Languages(tm); len(got) != 2 || got[1] != "ja" {
		t.Fatalf("languages: %v", got)
	}
}
