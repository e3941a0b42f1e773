package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/store"
)

// A report whose every shown field tries something: HTML, an encoded
// word, a right-to-left override.
const rawPhish = "From: reporter@reporter.example\r\nSubject: =?utf-8?q?=3Cscript=3Ealert(1)=3C/script=3E_phishing?=\r\nMessage-ID: <p1@reporter.example>\r\n\r\nhttp://evil.example/login\r\n"

type env struct {
	srv      *httptest.Server
	s        store.Store
	web      *Server
	token    string // sha256 token of "alice"
	bcryptTk string // bcrypt token of "bob"
	tokens   atomic.Pointer[Tokens]
	tokenTxt string // the tokens file
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	s, err := stores.Open(ctx, stores.SQLite, filepath.Join(t.TempDir(), "m.db"), store.Options{TicketPrefix: "CSIRT"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	file := func(raw, mid, tax, typ, ind, subject, text, decryption string) {
		id, err := s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Raw: []byte(raw)})
		if err != nil {
			t.Fatal(err)
		}
		js, _ := json.Marshal(map[string]any{"message_id": mid, "subject": subject, "text": text, "from": "reporter@reporter.example",
			"decryption": map[string]string{"status": decryption}, "signature": map[string]string{"status": "none"},
			"attachments": []map[string]any{{"filename": "invoice\u202egpj.exe", "content_type": "application/x-msdownload", "size": 10}}})
		if _, err := s.File(ctx, &store.Filing{SpoolID: id, MessageID: mid, Sender: "reporter@reporter.example",
			Subject: subject, Taxonomy: tax, Type: typ, ReportJSON: js, Indicators: []store.Indicator{{Kind: "domain", Value: ind}},
			Ack: &store.AckRequest{Recipient: "reporter@reporter.example", Domain: "csirt.example.org"}}); err != nil {
			t.Fatal(err)
		}
	}
	file(rawPhish, "<p1@reporter.example>", "fraud", "phishing", "evil.example", "<script>alert(1)</script> phishing",
		"Look at <b>this</b>: \u202egnp.exe", "none")
	file("From: b@x.example\r\nSubject: DDoS\r\n\r\n198.51.100.7\r\n", "<d1@x.example>", "availability", "ddos", "198.51.100.7", "DDoS", "198.51.100.7", "none")
	file("From: c@x.example\r\nSubject: Malware\r\n\r\nx\r\n", "<m1@x.example>", "malicious-code", "infected-system", "bad.example", "Malware", "x", "ok")
	e := &env{s: s}
	tok, line := NewToken("alice")
	hash, _ := bcrypt.GenerateFromPassword([]byte("bobs-own-passphrase"), bcrypt.MinCost)
	e.tokenTxt = "# staff\n" + line + "\nbob " + string(hash) + " bobs-own\n"
	tokens, err := ParseTokens([]byte(e.tokenTxt))
	if err != nil {
		t.Fatal(err)
	}
	e.tokens.Store(tokens)
	e.token, e.bcryptTk = tok, "bobs-own-passphrase"
	mux := http.NewServeMux()
	e.web = &Server{Store: s, TokenSource: e.tokens.Load, Team: "Example CSIRT", Domain: "csirt.example.org",
		Public: Public{Name: "Example CSIRT", Address: "csirt@example.org"}}
	e.web.Register(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// revoke leaves only bob's line in the tokens file (a reload after alice's
// token was removed).
func (e *env) revokeAlice(t *testing.T) {
	t.Helper()
	var kept []string
	for _, l := range strings.Split(e.tokenTxt, "\n") {
		if !strings.HasPrefix(l, "alice ") {
			kept = append(kept, l)
		}
	}
	tokens, err := ParseTokens([]byte(strings.Join(kept, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	e.tokens.Store(tokens)
}

func (e *env) do(t *testing.T, method, path, token, body string, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestStaffAuth: every API route answers 401 without a token and with a
// wrong one, every page sends to the sign-in form; both kinds of stored
// hash let their owners in; the old /api/ paths are gone.
func TestStaffAuth(t *testing.T) {
	e := setup(t)
	for _, rt := range e.web.apiRoutes() {
		path := strings.NewReplacer("{ticket}", "CSIRT-2026-000001", "{id}", "1").Replace(rt.path)
		for _, tok := range []string{"", "mdg_wrong", e.token + "x", "bobs-own-passphras"} {
			code, b, h := e.do(t, rt.method, path, tok, `{"status":"open"}`)
			if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") || !strings.Contains(string(b), `"error"`) {
				t.Errorf("%s %s with %q: %d", rt.method, path, tok, code)
			}
		}
	}
	for _, p := range []string{"/staff/", "/staff/incidents/CSIRT-2026-000001", "/staff/reports/1/raw"} {
		if code, _, h := e.do(t, "GET", p, e.token, ""); code != http.StatusSeeOther || h.Get("Location") != "/staff/login" {
			t.Errorf("GET %s without a session: %d %s", p, code, h.Get("Location"))
		}
	}
	if code, _, _ := e.do(t, "POST", "/staff/incidents/CSIRT-2026-000001/notes", "", "text=x&csrf=y", "Content-Type", "application/x-www-form-urlencoded"); code != http.StatusUnauthorized {
		t.Errorf("POST a form without a session: %d", code)
	}
	for _, tok := range []string{e.token, e.bcryptTk, e.bcryptTk} { // the bcrypt one twice: cached
		if code, _, _ := e.do(t, "GET", "/api/v1/incidents", tok, ""); code != 200 {
			t.Errorf("valid token refused: %d", code)
		}
	}
	if code, _, _ := e.do(t, "GET", "/api/incidents", e.token, ""); code != http.StatusNotFound {
		t.Errorf("the old /api/incidents: %d", code)
	}
	if code, _, h := e.do(t, "GET", "/", "", ""); code != http.StatusSeeOther || h.Get("Location") != "/about" {
		t.Errorf("/: %d %s", code, h.Get("Location"))
	}
	if code, b, _ := e.do(t, "GET", "/about", "", ""); code != 200 || !strings.Contains(string(b), `href="/staff/login"`) || !strings.Contains(string(b), "/rfc2350.txt") ||
		!strings.Contains(string(b), "/.well-known/security.txt") || !strings.Contains(string(b), "/pgp-key.asc") {
		t.Errorf("the public page: %d\n%s", code, b)
	}
}

// TestStaffAPI: search, filters and paging (bounded), one incident by
// either ticket form with its version, changes with their actor and a
// stale change refused, notes, replies queued, merge, raw download,
// errors as JSON.
func TestStaffAPI(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	list := func(q string) ([]store.Incident, int) {
		t.Helper()
		code, b, _ := e.do(t, "GET", "/api/v1/incidents?"+q, e.token, "")
		if code != 200 {
			t.Fatalf("list %s: %d %s", q, code, b)
		}
		var out struct {
			Incidents []store.Incident `json:"incidents"`
			Limit     int              `json:"limit"`
		}
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out.Incidents, out.Limit
	}
	if got, _ := list(""); len(got) != 3 {
		t.Fatalf("all: %d", len(got))
	}
	if got, _ := list("indicator=198.51.100.7"); len(got) != 1 || got[0].Type != "ddos" {
		t.Fatalf("by indicator: %+v", got)
	}
	if got, _ := list("taxonomy=fraud"); len(got) != 1 || got[0].Type != "phishing" {
		t.Fatalf("by taxonomy: %+v", got)
	}
	if got, _ := list("q=DDo"); len(got) != 1 || got[0].Type != "ddos" {
		t.Fatalf("by text: %+v", got)
	}
	a, _ := list("limit=2")
	b, _ := list("limit=2&offset=2")
	if len(a) != 2 || len(b) != 1 || a[0].Ticket == b[0].Ticket {
		t.Fatalf("paging: %d %d", len(a), len(b))
	}
	if _, limit := list("limit=100000"); limit != maxLimit {
		t.Fatalf("paging has no upper bound: %d", limit)
	}
	if got, _ := list("since=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); len(got) != 0 {
		t.Fatalf("since the future: %d", len(got))
	}
	for _, q := range []string{"since=yesterday", "status=bogus", "limit=-1", "q=" + strings.Repeat("x", 201)} {
		if code, b, _ := e.do(t, "GET", "/api/v1/incidents?"+q, e.token, ""); code != 400 || !strings.Contains(string(b), `"error"`) {
			t.Fatalf("%s: %d %s", q, code, b)
		}
	}
	phishList, _ := list("taxonomy=fraud")
	phish := phishList[0].Ticket
	sl := strings.Replace(phish, "#", "-", 1)
	var etag string
	for _, p := range []string{"/api/v1/incidents/" + url.PathEscape(phish), "/api/v1/incidents/" + sl} {
		code, b, h := e.do(t, "GET", p, e.token, "")
		if code != 200 || !strings.Contains(string(b), `"report_list"`) || h.Get("ETag") == "" {
			t.Fatalf("GET %s: %d %s", p, code, b)
		}
		etag = h.Get("ETag")
	}
	if code, b, _ := e.do(t, "GET", "/api/v1/incidents/CSIRT-2026-999999", e.token, ""); code != 404 || string(b) != "{\"error\":\"not found\"}\n" {
		t.Fatalf("missing incident: %d %s", code, b)
	}
	code, raw, h := e.do(t, "GET", "/api/v1/reports/1/raw", e.token, "")
	if code != 200 || string(raw) != rawPhish || h.Get("Content-Type") != "text/plain" || !strings.HasPrefix(h.Get("Content-Disposition"), "attachment") || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("raw: %d %q %v", code, raw, h)
	}
	for body, want := range map[string]int{`{"status":"bogus"}`: 400, `{"colour":"red"}`: 400, `{}`: 400, `{"priority":"P9"}`: 400,
		`{"assignee":"a\nb"}`: 400, `{"status":"open","assignee":"bob","priority":"p2"}`: 200} {
		if code, b, _ := e.do(t, "PATCH", "/api/v1/incidents/"+sl, e.token, body, "If-Match", etag); code != want {
			t.Fatalf("PATCH %s: %d %s", body, code, b)
		}
	}
	// The etag named the incident before that change: stale now.
	if code, b, _ := e.do(t, "PATCH", "/api/v1/incidents/"+sl, e.token, `{"priority":"P1"}`, "If-Match", etag); code != 409 || !strings.Contains(string(b), "changed meanwhile") {
		t.Fatalf("stale If-Match: %d %s", code, b)
	}
	if code, b, _ := e.do(t, "PATCH", "/api/v1/incidents/"+sl, e.token, `{"priority":"P1","updated_at":"2020-01-01T00:00:00Z"}`); code != 409 {
		t.Fatalf("stale updated_at: %d %s", code, b)
	}
	if code, b, _ := e.do(t, "POST", "/api/v1/incidents/"+sl+"/notes", e.token, `{"text":"  "}`); code != 400 {
		t.Fatalf("empty note: %d %s", code, b)
	}
	if code, b, _ := e.do(t, "POST", "/api/v1/incidents/"+sl+"/notes", e.token, `{"text":"called the hoster"}`); code != 201 {
		t.Fatalf("note: %d %s", code, b)
	}
	code, rb, _ := e.do(t, "POST", "/api/v1/incidents/"+sl+"/replies", e.token, `{"text":"Thanks, we are on it."}`)
	var queued struct {
		OutboxID int64 `json:"outbox_id"`
	}
	if code != 202 || json.Unmarshal(rb, &queued) != nil || queued.OutboxID == 0 {
		t.Fatalf("reply: %d %s", code, rb)
	}
	d, _ := e.s.GetIncident(ctx, phish)
	if d.Status != "open" || d.Assignee != "bob" || d.Priority != "P2" {
		t.Fatalf("after PATCH: %+v", d.Incident)
	}
	var kinds []string
	for _, ev := range d.Events {
		if ev.Actor == "alice" {
			kinds = append(kinds, ev.Kind)
		}
	}
	if strings.Join(kinds, " ") != "assignee priority status note reply" {
		t.Fatalf("events with their actor: %q", kinds)
	}
	if !slices.ContainsFunc(d.Outbox, func(o store.OutboxEntry) bool {
		return o.ID == queued.OutboxID && o.Kind == store.OutboxReply && o.Recipient == "reporter@reporter.example"
	}) {
		t.Fatalf("reply row: %+v", d.Outbox)
	}
	// The malware report came encrypted, and the reporter's key is not
	// known: no reply in clear.
	mal, _ := list("taxonomy=malicious-code")
	if code, b, _ := e.do(t, "POST", "/api/v1/incidents/"+strings.Replace(mal[0].Ticket, "#", "-", 1)+"/replies", e.token, `{"text":"x"}`); code != 409 || !strings.Contains(string(b), "came encrypted") {
		t.Fatalf("reply to an encrypted report without a key: %d %s", code, b)
	}
	// Merge the DDoS incident into the phishing one.
	ddos, _ := list("taxonomy=availability")
	if code, b, _ := e.do(t, "POST", "/api/v1/incidents/"+strings.Replace(ddos[0].Ticket, "#", "-", 1)+"/merge", e.token, `{"into":"`+phish+`"}`); code != 200 || !strings.Contains(string(b), `"aliases": [`) {
		t.Fatalf("merge: %d %s", code, b)
	}
	if code, b, _ := e.do(t, "POST", "/api/v1/incidents/"+sl+"/merge", e.token, `{"into":"`+phish+`"}`); code != 409 {
		t.Fatalf("merge into itself: %d %s", code, b)
	}
	if code, b, _ := e.do(t, "POST", "/api/v1/incidents/"+sl+"/notices/99/send", e.token, ""); code != 404 {
		t.Fatalf("no such notice: %d %s", code, b)
	}
	// By sender authentication.
	if got, _ := list("dmarc=fail"); len(got) != 0 {
		t.Fatalf("dmarc=fail before: %d", len(got))
	}
	id, _ := e.s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Raw: []byte("From: x@forged.example\r\n\r\nx")})
	if _, err := e.s.File(ctx, &store.Filing{SpoolID: id, MessageID: "<f@forged.example>", Sender: "x@forged.example",
		ReportJSON: []byte(`{"authentication":{"dkim":"none","dkim_domains":[],"spf":"fail","dmarc":"fail","from_aligned":false}}`)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := list("dmarc=fail"); len(got) != 1 || got[0].Requester != "x@forged.example" {
		t.Fatalf("dmarc=fail: %+v", got)
	}
	// SQL in a search parameter is a value, not SQL.
	if got, _ := list("indicator=" + url.QueryEscape("x' OR '1'='1")); len(got) != 0 {
		t.Fatalf("injection: %d rows", len(got))
	}
}

// TestOpenAPIMatchesRoutes: every route of API v1 is in openapi.json and
// every documented route is served (not the mux's 404 or 405).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := setup(t)
	code, b, _ := e.do(t, "GET", "/api/v1/openapi.json", "", "")
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if code != 200 || json.Unmarshal(b, &doc) != nil || doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi.json: %d %.200s", code, b)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			documented[strings.ToUpper(m)+" "+p] = true
		}
	}
	served := map[string]bool{"GET /api/v1/openapi.json": true}
	for _, rt := range e.web.apiRoutes() {
		served[rt.method+" "+rt.path] = true
	}
	for r := range served {
		if !documented[r] {
			t.Errorf("served, not documented: %s", r)
		}
	}
	for r := range documented {
		if !served[r] {
			t.Errorf("documented, not served: %s", r)
		}
		method, path, _ := strings.Cut(r, " ")
		path = strings.NewReplacer("{ticket}", "CSIRT-2026-000002", "{id}", "1").Replace(path)
		code, b, h := e.do(t, method, path, e.token, "{}")
		if (code == 404 || code == 405) && !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
			t.Errorf("%s: the mux answered %d %s", r, code, b)
		}
	}
}

// signIn signs in through the form and returns a client holding the
// session cookie, and the session's csrf token read from a page.
func (e *env) signIn(t *testing.T, token string) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: noRedirect.CheckRedirect}
	resp, err := c.PostForm(e.srv.URL+"/staff/login", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/staff/" {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	resp, err = c.Get(e.srv.URL + "/staff/incidents/CSIRT-2026-000001")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, after, ok := strings.Cut(string(b), `name="csrf" value="`)
	if resp.StatusCode != 200 || !ok {
		t.Fatalf("incident page: %d", resp.StatusCode)
	}
	csrf, _, _ := strings.Cut(after, `"`)
	return c, csrf
}

// TestSessions: the sign-in form sets a strict, HttpOnly cookie (Secure
// behind a TLS proxy) for a server-side session; a form without the
// session's csrf token is refused; revoking the token ends the session;
// signing out ends it; a wrong token gets the form again with 401.
func TestSessions(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	resp, err := noRedirect.PostForm(e.srv.URL+"/staff/login", url.Values{"token": {"mdg_wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(b), `id="error"`) || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong token: %d %v", resp.StatusCode, resp.Cookies())
	}
	for _, proxy := range []bool{false, true} {
		e.web.BehindTLSProxy = proxy
		resp, err := noRedirect.PostForm(e.srv.URL+"/staff/login", url.Values{"token": {e.bcryptTk}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cs := resp.Cookies()
		if len(cs) != 1 || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode || cs[0].Secure != proxy || cs[0].Expires.Before(time.Now().Add(11*time.Hour)) {
			t.Fatalf("cookie (behind a TLS proxy: %v): %+v", proxy, cs)
		}
	}
	e.web.BehindTLSProxy = false

	c, csrf := e.signIn(t, e.token)
	post := func(path string, form url.Values) int {
		t.Helper()
		resp, err := c.PostForm(e.srv.URL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/staff/incidents/CSIRT-2026-000001/notes", url.Values{"text": {"no csrf"}}); code != 403 {
		t.Fatalf("note without csrf: %d", code)
	}
	if code := post("/staff/incidents/CSIRT-2026-000001/notes", url.Values{"text": {"wrong csrf"}, "csrf": {csrf + "x"}}); code != 403 {
		t.Fatalf("note with a wrong csrf: %d", code)
	}
	if code := post("/staff/incidents/CSIRT-2026-000001/notes", url.Values{"text": {"with csrf"}, "csrf": {csrf}}); code != http.StatusSeeOther {
		t.Fatalf("note: %d", code)
	}
	d, _ := e.s.GetIncident(ctx, "CSIRT#2026-000001")
	var notes []string
	for _, ev := range d.Events {
		if ev.Kind == "note" {
			notes = append(notes, ev.Actor+":"+ev.Detail)
		}
	}
	if strings.Join(notes, "|") != "alice:with csrf" {
		t.Fatalf("notes: %q", notes)
	}
	get := func() (int, string) {
		resp, err := c.Get(e.srv.URL + "/staff/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	if code, _ := get(); code != 200 {
		t.Fatalf("list with a session: %d", code)
	}
	e.revokeAlice(t)
	if code, loc := get(); code != http.StatusSeeOther || loc != "/staff/login" {
		t.Fatalf("after the token was revoked: %d %s", code, loc)
	}
	// Bob signs in and out.
	c, csrf = e.signIn(t, e.bcryptTk)
	if code := post("/staff/logout", url.Values{"csrf": {csrf}}); code != http.StatusSeeOther {
		t.Fatalf("sign out: %d", code)
	}
	if code, _ := get(); code != http.StatusSeeOther {
		t.Fatalf("after signing out: %d", code)
	}
}

// TestPagesShowContentInert: what reporters wrote is escaped and its
// invisible characters shown; no script may run; the pages speak Japanese
// to a browser that prefers it.
func TestPagesShowContentInert(t *testing.T) {
	e := setup(t)
	c, _ := e.signIn(t, e.token)
	get := func(path, lang string) (string, http.Header) {
		req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
		if lang != "" {
			req.Header.Set("Accept-Language", lang)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		return string(b), resp.Header
	}
	page, h := get("/staff/incidents/CSIRT-2026-000001", "")
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") || !strings.Contains(csp, "form-action 'self'") {
		t.Fatalf("CSP: %s", csp)
	}
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt; phishing", "&lt;b&gt;this&lt;/b&gt;", "[U&#43;202E]gnp.exe", "invoice[U&#43;202E]gpj.exe", `href="/staff/reports/1/raw" download`} {
		if !strings.Contains(page, want) {
			t.Errorf("incident page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "\u202e") {
		t.Fatal("report content is live on the page")
	}
	list, _ := get("/staff/", "")
	// Whole pages (a template error would cut them short).
	for _, p := range []string{page, list} {
		if !strings.HasSuffix(strings.TrimSpace(p), "</html>") {
			t.Fatalf("a page ends early:\n%s", p)
		}
	}
	if strings.Contains(list, "<script>") || !strings.Contains(list, "Incidents") || !strings.Contains(list, `<option>amber&#43;strict</option>`) {
		t.Fatal("list page")
	}
	ja, h := get("/staff/", "ja,en-US;q=0.8")
	if !strings.Contains(ja, "インシデント一覧") || h.Get("Content-Language") != "ja" {
		t.Fatal("no Japanese page for a browser that prefers Japanese")
	}
	if en, _ := get("/staff/", "en-GB,ja;q=0.5"); !strings.Contains(en, "Incidents") || strings.Contains(en, "インシデント一覧") {
		t.Fatal("English preferred, Japanese served")
	}
}

// TestMetricsGuard: /metrics is open to loopback clients only; others need
// a staff token.
func TestMetricsGuard(t *testing.T) {
	tok, line := NewToken("prom")
	tokens, _ := ParseTokens([]byte(line))
	h := LoopbackOrToken(func() *Tokens { return tokens }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "metrics") }))
	for _, c := range []struct {
		remote, token string
		want          int
	}{{"127.0.0.1:5000", "", 200}, {"[::1]:5000", "", 200}, {"192.0.2.10:5000", "", 401}, {"192.0.2.10:5000", "wrong", 401}, {"192.0.2.10:5000", tok, 200}} {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.RemoteAddr = c.remote
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s %q: %d, want %d", c.remote, c.token, rec.Code, c.want)
		}
	}
}
