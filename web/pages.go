package web

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/language"

	"github.com/madoguchi/madoguchi/internal/vocab"
	"github.com/madoguchi/madoguchi/parse"
	"github.com/madoguchi/madoguchi/store"
)

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"when":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"inert": inert,
	"slug":  slug,
	"rfc3339": func(t time.Time) string {
		return t.UTC().Format("2006-01-02T15:04:05.999999Z07:00")
	},
}).ParseFS(assets, "templates/*.html"))

// pageData is what every page template sees.
type pageData struct {
	Lang   string
	Team   string
	Public Public
	Actor  string
	CSRF   string
	Error  string
	OIDC   bool // the sign-in page offers the provider

	// The list.
	Incidents  []store.Incident
	Filter     store.Filter
	Prev, Next string
	Statuses   []vocab.Status
	Priorities []vocab.Priority
	TLPs       []vocab.TLP
	DMARCs     []string

	// The incident.
	I       *store.IncidentDetail
	Reports []reportView
	Held    []store.OutboxEntry
}

// T is the page's text for an English key: Japanese when the browser
// prefers it and there is a translation.
func (d *pageData) T(key string) string {
	if d.Lang == "ja" {
		if v, ok := japanese[key]; ok {
			return v
		}
	}
	return key
}

// reportView is a report as the incident page shows it.
type reportView struct {
	store.Report
	Subject, Text, From    string
	Decryption, Signature  string
	DecMethod, SigMethod   string
	Signer, SignerEmail    string
	Attachments            []attachmentView
	Warnings               []string
	Classification, TLPTag string
	Auth                   *parse.Authentication
}

type attachmentView struct {
	Filename, ContentType, SHA256 string
	Size                          int64
}

var langs = language.NewMatcher([]language.Tag{language.English, language.Japanese})

// langOf is "ja" when the browser prefers Japanese, else "en".
func langOf(r *http.Request) string {
	tag, _ := language.MatchStrings(langs, r.Header.Get("Accept-Language"))
	if base, _ := tag.Base(); base.String() == "ja" {
		return "ja"
	}
	return "en"
}

// page renders a page: no script runs, nothing loads, forms post only
// here.
func (s *Server) page(w http.ResponseWriter, r *http.Request, name string, d *pageData) {
	d.Lang, d.Team, d.Public = langOf(r), s.Team, s.Public
	if sess := sessionOf(r); sess.ID != "" {
		d.Actor, d.CSRF = sess.Actor, sess.CSRF
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Language", d.Lang)
	if err := pages.ExecuteTemplate(w, name, d); err != nil && s.Log != nil {
		s.Log.Error("staff page", "page", name, "err", err)
	}
}

// inert makes text safe to look at besides HTML escaping (which the
// templates do): bidirectional overrides and invisible format characters
// are shown as their code points, so that a reporter's "exe.txt" cannot
// read as "txt.exe" and a hidden character cannot hide.
func inert(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.Is(unicode.Bidi_Control, r) || unicode.Is(unicode.Cf, r) && r != '\u00ad' || unicode.IsControl(r) && r != '\n' && r != '\t' {
			fmt.Fprintf(&b, "[U+%04X]", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *Server) pageAbout(w http.ResponseWriter, r *http.Request) {
	s.page(w, r, "about.html", &pageData{})
}

func (s *Server) pageLogin(w http.ResponseWriter, r *http.Request) {
	if _, err := s.liveSession(r); err == nil {
		http.Redirect(w, r, "/staff/", http.StatusSeeOther)
		return
	}
	s.page(w, r, "login.html", &pageData{OIDC: s.OIDC != nil})
}

func (s *Server) pageError(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := s.status(err)
	w.WriteHeader(code)
	s.page(w, r, "error.html", &pageData{Error: msg})
}

func (s *Server) pageList(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/staff/" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	f, err := filterOf(q)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	list, err := s.Store.ListIncidents(r.Context(), f)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	d := &pageData{Incidents: list, Filter: f, Statuses: vocab.Statuses, Priorities: vocab.Priorities,
		TLPs:   []vocab.TLP{vocab.TLPClear, vocab.TLPGreen, vocab.TLPAmber, vocab.TLPAmberStrict, vocab.TLPRed},
		DMARCs: []string{"pass", "fail", "none", "temperror"}}
	at := func(offset int) string {
		q2 := url.Values{}
		for k, v := range q {
			q2[k] = v
		}
		q2.Set("offset", strconv.Itoa(offset))
		q2.Set("limit", strconv.Itoa(f.Limit))
		return "/staff/?" + q2.Encode()
	}
	if f.Offset > 0 {
		d.Prev = at(max(f.Offset-f.Limit, 0))
	}
	if len(list) == f.Limit {
		d.Next = at(f.Offset + f.Limit)
	}
	s.page(w, r, "list.html", d)
}

func (s *Server) pageIncident(w http.ResponseWriter, r *http.Request) {
	d, err := s.Store.GetIncident(r.Context(), ticketParam(r))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	pd := &pageData{I: d, Statuses: vocab.Statuses, Priorities: vocab.Priorities}
	for _, rep := range d.ReportList {
		pd.Reports = append(pd.Reports, view(rep))
	}
	for _, o := range d.Outbox {
		if o.Kind == store.OutboxNotice && o.State == store.OutboxHeld {
			pd.Held = append(pd.Held, o)
		}
	}
	s.page(w, r, "incident.html", pd)
}

// view reads what the page shows of a report from its JSON.
func view(r store.Report) reportView {
	var rep struct {
		From       string `json:"from"`
		Subject    string `json:"subject"`
		Text       string `json:"text"`
		TLP        string `json:"tlp"`
		Decryption struct {
			Status, Detail, Method string
		} `json:"decryption"`
		Signature struct {
			Status, Signer, Method string
			Email                  string `json:"signer_email"`
		} `json:"signature"`
		Classification struct {
			Taxonomy, Type string
		} `json:"classification"`
		Attachments    []attachmentView      `json:"attachments"`
		Warnings       []string              `json:"warnings"`
		Authentication *parse.Authentication `json:"authentication"`
	}
	_ = json.Unmarshal(r.Report, &rep)
	v := reportView{Report: r, Subject: rep.Subject, Text: rep.Text, From: rep.From, Decryption: rep.Decryption.Status,
		Signature: rep.Signature.Status, Signer: rep.Signature.Signer, SigMethod: rep.Signature.Method, DecMethod: rep.Decryption.Method,
		SignerEmail: rep.Signature.Email, Attachments: rep.Attachments, Warnings: rep.Warnings,
		Classification: strings.Trim(rep.Classification.Taxonomy+"/"+rep.Classification.Type, "/"), TLPTag: rep.TLP, Auth: rep.Authentication}
	if v.DecMethod == "none" {
		v.DecMethod = ""
	}
	if v.SigMethod == "none" {
		v.SigMethod = ""
	}
	for i := range v.Attachments {
		a := &v.Attachments[i]
		a.Filename, a.ContentType = inert(a.Filename), inert(a.ContentType)
	}
	return v
}

// back sends the browser to the incident page after a form (post,
// redirect, get).
func back(w http.ResponseWriter, r *http.Request, ticket string) {
	http.Redirect(w, r, "/staff/incidents/"+url.PathEscape(slug(ticket)), http.StatusSeeOther)
}

func (s *Server) formNote(w http.ResponseWriter, r *http.Request) {
	t := ticketParam(r)
	if err := s.addNote(r.Context(), t, actor(r), r.PostFormValue("text")); err != nil {
		s.pageError(w, r, err)
		return
	}
	back(w, r, t)
}

func (s *Server) formChange(w http.ResponseWriter, r *http.Request) {
	t := ticketParam(r)
	field := func(k string) *string {
		if _, ok := r.PostForm[k]; !ok {
			return nil
		}
		v := r.PostFormValue(k)
		return &v
	}
	req := changeRequest{Status: field("status"), Assignee: field("assignee"), Priority: field("priority"), Resolution: field("resolution"),
		UpdatedAt: r.PostFormValue("updated_at")}
	if err := s.change(r.Context(), t, actor(r), req); err != nil {
		s.pageError(w, r, err)
		return
	}
	back(w, r, t)
}

func (s *Server) formMerge(w http.ResponseWriter, r *http.Request) {
	into := r.PostFormValue("into")
	if err := s.merge(r.Context(), ticketParam(r), actor(r), into); err != nil {
		s.pageError(w, r, err)
		return
	}
	back(w, r, ticketOf(into))
}

func (s *Server) formReply(w http.ResponseWriter, r *http.Request) {
	t := ticketParam(r)
	if _, err := s.reply(r.Context(), t, actor(r), r.PostFormValue("text")); err != nil {
		s.pageError(w, r, err)
		return
	}
	back(w, r, t)
}

func (s *Server) formSendNotice(w http.ResponseWriter, r *http.Request) {
	t := ticketParam(r)
	if err := s.sendNotice(r.Context(), t, actor(r), r.PathValue("id")); err != nil {
		s.pageError(w, r, err)
		return
	}
	back(w, r, t)
}
