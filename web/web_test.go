package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/store"
)

const rawPhish = "From: reporter@reporter.example\r\nSubject: <script>alert(1)</script> phishing\r\nMessage-ID: <p1@reporter.example>\r\n\r\nhttp://evil.example/login\r\n"

type env struct {
	srv      *httptest.Server
	s        store.Store
	token    string // sha256 token of "alice"
	bcryptTk string // bcrypt token of "bob"
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	s, err := stores.Open(ctx, stores.SQLite, filepath.Join(t.TempDir(), "m.db"), store.Options{TicketPrefix: "CSIRT"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	file := func(raw, mid, tax, typ, ind string) {
		id, err := s.Spool(ctx, &store.Message{Channel: store.ChannelSMTP, Raw: []byte(raw)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.File(ctx, &store.Filing{SpoolID: id, MessageID: mid, Sender: "reporter@reporter.example",
			Subject: strings.SplitN(strings.SplitN(raw, "Subject: ", 2)[1], "\r\n", 2)[0], Taxonomy: tax, Type: typ,
			ReportJSON: []byte(`{"subject":"x"}`), Indicators: []store.Indicator{{Kind: "domain", Value: ind}}}); err != nil {
			t.Fatal(err)
		}
	}
	file(rawPhish, "<p1@reporter.example>", "fraud", "phishing", "evil.example")
	file("From: b@x.example\r\nSubject: DDoS\r\n\r\n198.51.100.7\r\n", "<d1@x.example>", "availability", "ddos", "198.51.100.7")
	file("From: c@x.example\r\nSubject: Malware\r\n\r\nx\r\n", "<m1@x.example>", "malicious-code", "infected-system", "bad.example")
	tok, line := NewToken("alice")
	hash, _ := bcrypt.GenerateFromPassword([]byte("bobs-own-passphrase"), bcrypt.MinCost)
	tokens, err := ParseTokens([]byte("# staff\n" + line + "\nbob " + string(hash) + " bobs-own\n"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	(&Server{Store: s, Tokens: tokens, Team: "Example CSIRT"}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{srv: srv, s: s, token: tok, bcryptTk: "bobs-own-passphrase"}
}

func (e *env) do(t *testing.T, method, path, token, body string) (int, []byte, http.Header) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// TestStaffAuth: every staff route answers 401 without a token and with a
// wrong one; both kinds of stored hash let their owners in.
func TestStaffAuth(t *testing.T) {
	e := setup(t)
	routes := [][2]string{{"GET", "/api/incidents"}, {"GET", "/api/incidents/CSIRT-2026-000001"}, {"POST", "/api/incidents/CSIRT-2026-000001"},
		{"GET", "/api/reports/1/raw"}, {"GET", "/staff/"}, {"GET", "/staff/incidents/CSIRT-2026-000001"}}
	for _, rt := range routes {
		for _, tok := range []string{"", "mdg_wrong", e.token + "x", "bobs-own-passphras"} {
			code, _, h := e.do(t, rt[0], rt[1], tok, `{"status":"open"}`)
			if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s with %q: %d", rt[0], rt[1], tok, code)
			}
		}
	}
	for _, tok := range []string{e.token, e.bcryptTk, e.bcryptTk} { // the bcrypt one twice: cached
		if code, _, _ := e.do(t, "GET", "/api/incidents", tok, ""); code != 200 {
			t.Errorf("valid token refused: %d", code)
		}
	}
}

// TestStaffAPI: search and paging, one incident by either ticket form, the
// raw message byte for byte, and changes recorded with the token's name.
func TestStaffAPI(t *testing.T) {
	e := setup(t)
	list := func(q string) []store.Incident {
		t.Helper()
		code, b, _ := e.do(t, "GET", "/api/incidents?"+q, e.token, "")
		if code != 200 {
			t.Fatalf("list %s: %d %s", q, code, b)
		}
		var out struct {
			Incidents []store.Incident `json:"incidents"`
		}
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out.Incidents
	}
	if got := list(""); len(got) != 3 {
		t.Fatalf("all: %d", len(got))
	}
	if got := list("indicator=198.51.100.7"); len(got) != 1 || got[0].Type != "ddos" {
		t.Fatalf("by indicator: %+v", got)
	}
	if got := list("taxonomy=fraud"); len(got) != 1 || got[0].Type != "phishing" {
		t.Fatalf("by taxonomy: %+v", got)
	}
	if a, b := list("limit=2"), list("limit=2&offset=2"); len(a) != 2 || len(b) != 1 || a[0].Ticket == b[0].Ticket {
		t.Fatalf("paging: %d %d", len(a), len(b))
	}
	if got := list("since=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); len(got) != 0 {
		t.Fatalf("since the future: %d", len(got))
	}
	if code, _, _ := e.do(t, "GET", "/api/incidents?since=yesterday", e.token, ""); code != 400 {
		t.Fatalf("bad date: %d", code)
	}
	phish := list("taxonomy=fraud")[0].Ticket
	for _, p := range []string{"/api/incidents/" + url.PathEscape(phish), "/api/incidents/" + strings.Replace(phish, "#", "-", 1)} {
		code, b, _ := e.do(t, "GET", p, e.token, "")
		if code != 200 || !strings.Contains(string(b), `"report_list"`) {
			t.Fatalf("GET %s: %d %s", p, code, b)
		}
	}
	if code, _, _ := e.do(t, "GET", "/api/incidents/CSIRT-2026-999999", e.token, ""); code != 404 {
		t.Fatalf("missing incident: %d", code)
	}
	code, b, h := e.do(t, "GET", "/api/reports/1/raw", e.token, "")
	if code != 200 || string(b) != rawPhish || h.Get("Content-Type") != "message/rfc822" {
		t.Fatalf("raw: %d %q %s", code, b, h.Get("Content-Type"))
	}
	slug := strings.Replace(phish, "#", "-", 1)
	for body, want := range map[string]int{`{"status":"bogus"}`: 400, `{"colour":"red"}`: 400, `{}`: 400, `{"status":"open","assignee":"bob"}`: 200} {
		if code, b, _ := e.do(t, "POST", "/api/incidents/"+slug, e.token, body); code != want {
			t.Fatalf("POST %s: %d %s", body, code, b)
		}
	}
	d, err := e.s.GetIncident(context.Background(), phish)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != "open" || d.Assignee != "bob" {
		t.Fatalf("after POST: %s %s", d.Status, d.Assignee)
	}
	found := false
	for _, ev := range d.Events {
		if ev.Kind == "status" && ev.Actor == "alice" && ev.Detail == "open" {
			found = true
		}
	}
	if !found {
		t.Fatalf("status change not in the event log with its actor: %+v", d.Events)
	}
	// SQL in a search parameter is a value, not SQL.
	if got := list("indicator=" + url.QueryEscape("x' OR '1'='1")); len(got) != 0 {
		t.Fatalf("injection: %d rows", len(got))
	}
}

// TestStaffPages: the pages render, escape what reporters wrote, forbid
// scripts, and show in a real headless Chromium (screenshot kept as a test
// artefact).
func TestStaffPages(t *testing.T) {
	e := setup(t)
	code, b, h := e.do(t, "GET", "/staff/", e.token, "")
	if code != 200 || !strings.Contains(string(b), "CSIRT#2026-00000") || strings.Contains(string(b), "<script>alert") {
		t.Fatalf("list page: %d\n%s", code, b)
	}
	if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatal("no CSP")
	}
	code, b, _ = e.do(t, "GET", "/staff/incidents/CSIRT-2026-000001", e.token, "")
	if code != 200 || !strings.Contains(string(b), "&lt;script&gt;") || !strings.Contains(string(b), "/api/reports/1/raw") {
		t.Fatalf("incident page: %d\n%s", code, b)
	}

	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium not installed (CI installs it)")
		}
		t.Skip("chromium not installed")
	}
	// The browser cannot send a bearer header from the command line: a
	// front adds the token, as a reverse proxy with single sign-on would.
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Scheme, r2.URL.Host, r2.RequestURI = "http", strings.TrimPrefix(e.srv.URL, "http://"), ""
		r2.Header.Set("Authorization", "Bearer "+e.token)
		resp, err := http.DefaultTransport.RoundTrip(r2)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	defer front.Close()
	dir := os.Getenv("MADOGUCHI_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	_ = os.MkdirAll(dir, 0o755)
	shot := filepath.Join(dir, "staff-incident.png")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir(), "--window-size=1200,900"}
	out, err := exec.CommandContext(ctx, chromium, append(args, "--screenshot="+shot, front.URL+"/staff/incidents/CSIRT-2026-000001")...).CombinedOutput()
	if err != nil {
		t.Fatalf("chromium screenshot: %v\n%s", err, out)
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 2000 {
		t.Fatalf("screenshot: %v", err)
	}
	dom, err := exec.CommandContext(ctx, chromium, append(args, "--dump-dom", front.URL+"/staff/")...).Output()
	if err != nil {
		t.Fatalf("chromium dump-dom: %v", err)
	}
	if !strings.Contains(string(dom), "CSIRT#2026-000003") || strings.Contains(string(dom), "<script>alert") {
		t.Fatalf("the list as Chromium rendered it:\n%s", dom)
	}
	t.Logf("screenshot: %s", shot)
}

// TestMetricsGuard: /metrics is open to loopback clients only; others need
// a staff token.
func TestMetricsGuard(t *testing.T) {
	tok, line := NewToken("prom")
	tokens, _ := ParseTokens([]byte(line))
	h := LoopbackOrToken(tokens, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "metrics") }))
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
