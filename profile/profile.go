package profile

import (
	"fmt"
	"strings"
	"time"

	"github.com/madoguchi/madoguchi/configs"
)

// Key is what the documents say about the team's OpenPGP key.
type Key struct {
	Fingerprint string // upper-case hex, no spaces
	UserID      string
	URL         string // where the key is published, e.g. PUBLIC_URL/pgp-key.asc
}

// groupFingerprint writes a fingerprint in blocks of four, as people read
// it out on the phone.
func groupFingerprint(f string) string {
	var b strings.Builder
	for i := 0; i < len(f); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
			if i == len(f)/2 {
				b.WriteByte(' ')
			}
		}
		b.WriteString(f[i:min(i+4, len(f))])
	}
	return b.String()
}

// Missing lists the team fields RFC 2350 cannot do without, by their
// configuration key (configs.Team.MissingRFC2350, which config check uses).
func Missing(t configs.Team) []string { return t.MissingRFC2350() }

// phrases are the fixed texts of the profile, by language: section
// headings as RFC 2350's template names them, and madoguchi's boilerplate.
var phrases = map[string]map[string]string{
	"en": {
		"title": "RFC 2350 description of %s", "notStated": "Not stated.", "none": "None.",
		"1": "1. Document Information", "1.1": "1.1. Date of Last Update", "1.2": "1.2. Distribution List for Notifications",
		"1.2t": "There is no distribution list; changes are published at the\n   location below.",
		"1.3":  "1.3. Locations where this Document May Be Found", "signed": "Signed",
		"1.4": "1.4. Authenticating this Document", "1.4t": "This document is signed with the team's OpenPGP key (section 2.8).",
		"2": "2. Contact Information", "2.1": "2.1. Name of the Team", "2.2": "2.2. Address", "2.3": "2.3. Time Zone",
		"2.4": "2.4. Telephone Number", "2.5": "2.5. Facsimile Number", "2.6": "2.6. Other Telecommunication",
		"2.7":  "2.7. Electronic Mail Address",
		"2.7t": "Reports receive an acknowledgement with a ticket number\n   (%s#YYYY-NNNNNN); keep it in the subject of replies.",
		"2.8":  "2.8. Public Keys and Encryption Information", "nokey": "No key is published.",
		"2.9": "2.9. Team Members", "2.10": "2.10. Other Information", "languages": "Languages",
		"2.11":  "2.11. Points of Customer Contact",
		"2.11t": "E-mail to %s, encrypted with the key above when the content\n   is sensitive. Hours: %s.",
		"3":     "3. Charter", "3.1": "3.1. Mission Statement", "3.2": "3.2. Constituency", "3.3": "3.3. Sponsorship and/or Affiliation", "3.4": "3.4. Authority",
		"4": "4. Policies", "4.1": "4.1. Types of Incidents and Level of Support",
		"4.1t": "All incidents are acknowledged and classified with the Reference\n   Security Incident Taxonomy (RSIT); support is given by priority.",
		"4.2":  "4.2. Co-operation, Interaction and Disclosure of Information", "4.2t": "Traffic Light Protocol (FIRST TLP 2.0) markings are honoured.",
		"4.3":  "4.3. Communication and Authentication",
		"4.3t": "E-mail, OpenPGP-encrypted and signed where possible. Our\n   acknowledgements are signed with the key in section 2.8.",
		"5":    "5. Services", "5.1": "5.1. Incident Response", "5.1t": "Incident triage, coordination and resolution.",
		"6":  "6. Incident Reporting Forms",
		"6t": "No form: write to %s with what happened, when, the systems\n   and indicators involved, and how to reach you.",
		"7":  "7. Disclaimers",
	},
	"ja": {
		"title": "%s の RFC 2350 記述", "notStated": "記載なし。", "none": "なし。",
		"1": "1. 文書情報", "1.1": "1.1. 最終更新日", "1.2": "1.2. 更新の通知先",
		"1.2t": "通知先のリストはありません。変更は下記の場所で公開します。",
		"1.3":  "1.3. 本文書の入手先", "signed": "署名付き",
		"1.4": "1.4. 本文書の認証", "1.4t": "本文書はチームの OpenPGP 鍵（2.8 節）で署名されています。",
		"2": "2. 連絡先情報", "2.1": "2.1. チーム名", "2.2": "2.2. 住所", "2.3": "2.3. タイムゾーン",
		"2.4": "2.4. 電話番号", "2.5": "2.5. FAX 番号", "2.6": "2.6. その他の通信手段",
		"2.7":  "2.7. 電子メールアドレス",
		"2.7t": "ご報告にはチケット番号（%s#YYYY-NNNNNN）付きの受付通知を\n   お送りします。返信の件名にはこの番号を残してください。",
		"2.8":  "2.8. 公開鍵と暗号化に関する情報", "nokey": "公開している鍵はありません。",
		"2.9": "2.9. チームメンバー", "2.10": "2.10. その他の情報", "languages": "対応言語",
		"2.11":  "2.11. 顧客との連絡窓口",
		"2.11t": "%s 宛の電子メール（内容が機微な場合は上記の鍵で暗号化）。\n   対応時間: %s。",
		"3":     "3. 憲章", "3.1": "3.1. ミッション", "3.2": "3.2. 対象範囲（コンスティチュエンシー）", "3.3": "3.3. スポンサーおよび所属", "3.4": "3.4. 権限",
		"4": "4. ポリシー", "4.1": "4.1. インシデントの種類と支援のレベル",
		"4.1t": "すべてのインシデントを受け付け、RSIT（Reference Security Incident\n   Taxonomy）で分類します。支援は優先度に応じて行います。",
		"4.2":  "4.2. 協力、連携および情報の開示", "4.2t": "Traffic Light Protocol（FIRST TLP 2.0）の指定を尊重します。",
		"4.3":  "4.3. 通信と認証",
		"4.3t": "電子メール。可能な場合は OpenPGP で暗号化・署名します。\n   受付通知は 2.8 節の鍵で署名します。",
		"5":    "5. サービス", "5.1": "5.1. インシデント対応", "5.1t": "インシデントのトリアージ、調整および解決。",
		"6":  "6. インシデント報告様式",
		"6t": "様式はありません。%s 宛に、何が・いつ起きたか、関係する\n   システムと痕跡、連絡先をお知らせください。",
		"7":  "7. 免責事項",
	},
}

// localized returns the team with its free-text fields in lang where the
// configuration gives them (team.ja), English otherwise.
func localized(t configs.Team, lang string) configs.Team {
	if lang != "ja" {
		return t
	}
	j := t.Ja
	pick := func(dst *string, v string) {
		if strings.TrimSpace(v) != "" {
			*dst = v
		}
	}
	pick(&t.Name, j.Name)
	pick(&t.PostalAddress, j.PostalAddress)
	pick(&t.Hours, j.Hours)
	pick(&t.Constituency, j.Constituency)
	pick(&t.Mission, j.Mission)
	pick(&t.Sponsorship, j.Sponsorship)
	pick(&t.Authority, j.Authority)
	pick(&t.OtherInfo, j.OtherInfo)
	pick(&t.Disclosure, j.Disclosure)
	pick(&t.Disclaimer, j.Disclaimer)
	if len(j.Services) > 0 {
		t.Services = j.Services
	}
	return t
}

// Languages lists the renderings the configuration asks for: English
// always, Japanese when team.languages holds "ja".
func Languages(t configs.Team) []string {
	out := []string{"en"}
	for _, l := range t.Languages {
		if l == "ja" {
			out = append(out, "ja")
		}
	}
	return out
}

// RFC2350 renders the profile in English, in the section order of RFC
// 2350's template (appendix D).
func RFC2350(t configs.Team, keys []Key, now time.Time) string {
	return RFC2350Lang(t, keys, now, "en")
}

// RFC2350Lang renders the profile in lang ("en" or "ja").
func RFC2350Lang(t configs.Team, keys []Key, now time.Time, lang string) string {
	tr, ok := phrases[lang]
	if !ok {
		tr, lang = phrases["en"], "en"
	}
	t = localized(t, lang)
	or := func(s string) string {
		if strings.TrimSpace(s) == "" {
			return tr["notStated"]
		}
		return strings.TrimSpace(s)
	}
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	sec := func(k, body string) { p("%s\n\n   %s\n\n", tr[k], body) }
	base := strings.TrimRight(t.PublicURL, "/")
	doc := "rfc2350.txt"
	if lang != "en" {
		doc = "rfc2350." + lang + ".txt"
	}
	p(tr["title"]+"\n\n", t.Name)
	p("%s\n\n", tr["1"])
	sec("1.1", now.UTC().Format("2006-01-02"))
	sec("1.2", tr["1.2t"])
	sec("1.3", fmt.Sprintf("%s/%s\n   %s: %s/%s.asc", base, doc, tr["signed"], base, doc))
	sec("1.4", tr["1.4t"])
	p("%s\n\n", tr["2"])
	sec("2.1", t.Name)
	sec("2.2", or(t.PostalAddress))
	sec("2.3", or(t.Timezone))
	sec("2.4", or(t.Phone))
	sec("2.5", tr["none"])
	sec("2.6", tr["none"])
	sec("2.7", t.Address+"\n   "+fmt.Sprintf(tr["2.7t"], t.TicketPrefix))
	p("%s\n\n", tr["2.8"])
	if len(keys) == 0 {
		p("   %s\n\n", tr["nokey"])
	}
	for _, k := range keys {
		p("   User ID:     %s\n   Fingerprint: %s\n", k.UserID, groupFingerprint(k.Fingerprint))
		if k.URL != "" {
			p("   Key:         %s\n", k.URL)
		}
		p("\n")
	}
	members := tr["notStated"]
	if len(t.Members) > 0 {
		members = strings.Join(t.Members, "\n   ")
	}
	sec("2.9", members)
	other := tr["languages"] + ": " + strings.Join(t.Languages, ", ")
	if t.OtherInfo != "" {
		other += "\n   " + strings.TrimSpace(t.OtherInfo)
	}
	sec("2.10", other)
	sec("2.11", fmt.Sprintf(tr["2.11t"], t.Address, or(t.Hours)))
	p("%s\n\n", tr["3"])
	sec("3.1", or(t.Mission))
	sec("3.2", or(t.Constituency))
	sec("3.3", or(t.Sponsorship))
	sec("3.4", or(t.Authority))
	p("%s\n\n", tr["4"])
	sec("4.1", tr["4.1t"])
	sec("4.2", or(t.Disclosure)+"\n   "+tr["4.2t"])
	sec("4.3", tr["4.3t"])
	p("%s\n\n", tr["5"])
	if len(t.Services) == 0 {
		sec("5.1", tr["5.1t"])
	} else {
		for i, s := range t.Services {
			p("5.%d. %s\n\n", i+1, s)
		}
	}
	reporting := fmt.Sprintf(tr["6t"], t.Address)
	if t.ReportingURL != "" {
		reporting = t.ReportingURL
	}
	sec("6", reporting)
	p("%s\n\n   %s\n", tr["7"], or(t.Disclaimer))
	return b.String()
}

// SecurityTxt renders RFC 9116 security.txt. expires must be in the future
// (RFC 9116 recommends less than a year ahead).
func SecurityTxt(t configs.Team, keyURL string, expires time.Time) string {
	var b strings.Builder
	base := strings.TrimRight(t.PublicURL, "/")
	fmt.Fprintf(&b, "# %s\n", t.Name)
	fmt.Fprintf(&b, "Contact: mailto:%s\n", t.Address)
	if t.Phone != "" {
		fmt.Fprintf(&b, "Contact: tel:%s\n", strings.ReplaceAll(t.Phone, " ", "-"))
	}
	fmt.Fprintf(&b, "Expires: %s\n", expires.UTC().Format(time.RFC3339))
	if keyURL != "" {
		fmt.Fprintf(&b, "Encryption: %s\n", keyURL)
	}
	if len(t.Languages) > 0 {
		fmt.Fprintf(&b, "Preferred-Languages: %s\n", strings.Join(t.Languages, ", "))
	}
	fmt.Fprintf(&b, "Canonical: %s/.well-known/security.txt\n", base)
	fmt.Fprintf(&b, "Policy: %s/rfc2350.txt\n", base)
	return b.String()
}
