package app

import (
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/profile"
	"github.com/madoguchi/madoguchi/web"
)

// staffTokens loads http.staff_tokens_file (none configured: no token is
// valid, and the staff API answers 401 to everyone).
func (e *Env) StaffTokens() (*web.Tokens, error) {
	f := e.Cfg.HTTP.StaffTokensFile
	if f == "" {
		return web.ParseTokens(nil)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		return nil, UsageErr("http.staff_tokens_file: %s: %v", f, UnwrapPathErr(err))
	}
	t, err := web.ParseTokens(b)
	if err != nil {
		return nil, UsageErr("http.staff_tokens_file: %s: %v", f, err)
	}
	return t, nil
}

// securityTxtLifetime is how far ahead security.txt's Expires lies: RFC 9116
// recommends less than a year, and a document rendered on each request
// never goes stale.
const securityTxtLifetime = 180 * 24 * time.Hour

func (e *Env) ProfileKeys(keys *crypto.Keys) []profile.Key {
	var out []profile.Key
	for _, k := range keys.TeamKeys() {
		out = append(out, profile.Key{Fingerprint: k.Fingerprint, UserID: k.UserID, URL: strings.TrimRight(e.Cfg.Team.PublicURL, "/") + "/pgp-key.asc"})
	}
	return out
}

// docCache keeps the public documents as last rendered and signed. They
// change only with the keys (a SIGHUP reload) and the day (dates in them);
// the configuration changes only with a restart. Signing on every request
// let a flood of GETs cost a private-key signature each.
type docCache struct {
	mu   sync.Mutex
	docs map[string]cachedDoc
}

type cachedDoc struct {
	keys *crypto.Keys
	day  string
	body []byte
	err  error
}

// get returns the document name for keys today, rendering it with render
// when the cached one is for other keys or another day.
func (c *docCache) get(name string, keys *crypto.Keys, now time.Time, render func() ([]byte, error)) ([]byte, error) {
	day := now.UTC().Format(time.DateOnly)
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.docs[name]; ok && d.keys == keys && d.day == day {
		return d.body, d.err
	}
	body, err := render()
	if c.docs == nil {
		c.docs = map[string]cachedDoc{}
	}
	c.docs[name] = cachedDoc{keys: keys, day: day, body: body, err: err}
	return body, err
}

// publicHandlers serves what anyone may fetch: the RFC 2350 profile (plain
// and clearsigned), security.txt and the team key. Nothing else is served
// without a token. What is signed is signed once a day (docCache).
func (e *Env) PublicHandlers(mux *http.ServeMux, keySource func() *crypto.Keys) {
	cache := &docCache{}
	text := func(w http.ResponseWriter, body []byte) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(body)
	}
	fail := func(w http.ResponseWriter, err error) {
		e.Log.Warn("public document", "err", err)
		http.Error(w, "not available: the team has no signing key configured", http.StatusNotFound)
	}
	for _, lang := range profile.Languages(e.Cfg.Team) {
		doc := "/rfc2350.txt"
		if lang != "en" {
			doc = "/rfc2350." + lang + ".txt"
		}
		mux.HandleFunc("GET "+doc, func(w http.ResponseWriter, r *http.Request) {
			keys := keySource()
			text(w, []byte(profile.RFC2350Lang(e.Cfg.Team, e.ProfileKeys(keys), time.Now(), lang)))
		})
		mux.HandleFunc("GET "+doc+".asc", func(w http.ResponseWriter, r *http.Request) {
			keys := keySource()
			now := time.Now()
			signed, err := cache.get(doc+".asc", keys, now, func() ([]byte, error) {
				return keys.Clearsign([]byte(profile.RFC2350Lang(e.Cfg.Team, e.ProfileKeys(keys), now, lang)), now)
			})
			if err != nil {
				fail(w, err)
				return
			}
			text(w, signed)
		})
	}
	mux.HandleFunc("GET /.well-known/security.txt", func(w http.ResponseWriter, r *http.Request) {
		keys := keySource()
		now := time.Now()
		body, _ := cache.get("security.txt", keys, now, func() ([]byte, error) {
			keyURL := ""
			if len(keys.TeamKeys()) > 0 {
				keyURL = strings.TrimRight(e.Cfg.Team.PublicURL, "/") + "/pgp-key.asc"
			}
			expires, _ := e.Cfg.Team.ParseExpires() // checked by config check
			if expires.IsZero() {
				expires = now.Add(securityTxtLifetime)
			}
			body := []byte(profile.SecurityTxt(e.Cfg.Team, keyURL, expires))
			if signed, err := keys.Clearsign(body, now); err == nil {
				body = signed // RFC 9116 section 2.3: a signed file is preferred
			}
			return body, nil
		})
		text(w, body)
	})
	// Web Key Directory, direct and advanced methods: the team key under
	// the z-base-32 SHA-1 of the team address's local part, binary, and an
	// empty policy file. Any other hash is 404.
	wkdHash, wkdDomain := profile.WKDHash(e.Cfg.Team.Address)
	wkd := func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("hash") != wkdHash {
			http.NotFound(w, r)
			return
		}
		keys := keySource()
		pub, err := keys.ExportPublicBinary()
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		_, _ = w.Write(pub)
	}
	policy := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
	}
	mux.HandleFunc("GET /.well-known/openpgpkey/hu/{hash}", wkd)
	mux.HandleFunc("GET /.well-known/openpgpkey/policy", policy)
	if wkdDomain != "" && wkdDomain != "hu" && !strings.ContainsAny(wkdDomain, "/{}") {
		mux.HandleFunc("GET /.well-known/openpgpkey/"+wkdDomain+"/hu/{hash}", wkd)
		mux.HandleFunc("GET /.well-known/openpgpkey/"+wkdDomain+"/policy", policy)
	}
	mux.HandleFunc("GET /pgp-key.asc", func(w http.ResponseWriter, r *http.Request) {
		keys := keySource()
		pub, err := cache.get("pgp-key.asc", keys, time.Now(), keys.ExportPublic)
		if err != nil {
			fail(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/pgp-keys")
		_, _ = w.Write(pub)
	})
}
