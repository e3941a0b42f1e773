package configs

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestDefaultsValid(t *testing.T) {
	for _, p := range Defaults().Validate() {
		if !p.Warning {
			t.Errorf("defaults invalid: %s", p)
		}
	}
	d := Defaults()
	if d.Store.Driver != "sqlite" || d.Intake.SMTP.Listen != "127.0.0.1:2525" || d.HTTP.Listen != "127.0.0.1:8025" || d.Notify.Relay != "" {
		t.Fatalf("defaults differ from interface.md: %+v", d)
	}
}

func TestExamplesLoad(t *testing.T) {
	for _, f := range []string{"example.yaml", "production-postgres.yaml"} {
		c, err := Load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range c.Validate() {
			if !p.Warning {
				t.Errorf("%s: %s", f, p)
			}
		}
	}
	c, _ := Load("production-postgres.yaml")
	if c.Store.Driver != "postgres" || c.Intake.IMAP[0].ProcessedMailbox != "Processed" {
		t.Fatalf("%+v", c.Store)
	}
}

func TestStrictErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"team:\n  name: X\n  colour: blue\n", "c.yaml:3: team.colour: unknown key"},
		{"intake:\n  smtp:\n    max_message_bytes: lots\n", "c.yaml:3: intake.smtp.max_message_bytes: wrong type"},
		{"store: [1, 2]\n", "c.yaml:1: store: wrong type"},
		{"team: {name: x\n", "c.yaml:1: did not find"},
		{"pipeline:\n  lease: forever\n", "c.yaml:2: pipeline.lease"},
		// A quoted key may hold newlines (found by FuzzLoad): still one line.
		{"team:\n  name: X\n\"odd key\\n\\nk\": 1\n", `c.yaml:3: "odd key\n\nk": unknown key`},
		{"? |\n  a b\n  c\n: 1\n", `c.yaml:1: "a b\nc\n": unknown key`},
		{"team:\n  \"co\\tlour\": blue\n", `c.yaml:2: "team.co\tlour": unknown key`},
	}
	for _, c := range cases {
		_, err := Decode("c.yaml", []byte(c.yaml))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: got %v, want prefix %q", c.yaml, err, c.want)
		}
	}
}

// TestEveryProblemInOneRun: yaml's problems (unknown keys, wrong types)
// and Validate's come together, each naming file, line and key, and the
// check of notify.max_attempts names that key.
func TestEveryProblemInOneRun(t *testing.T) {
	data := "team:\n  name: X\n  colour: blue\n  address: nope\nnotify:\n  max_attempts: -1\n  rate_per_hour: lots\npipeline:\n  lease: forever\n"
	c, err := Decode("c.yaml", []byte(data))
	var es Errors
	if !errors.As(err, &es) || c == nil {
		t.Fatalf("Decode: %v %v", c, err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Error())
	}
	for _, p := range c.Validate() {
		if !p.Warning {
			got = append(got, p.Where())
		}
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{"c.yaml:3: team.colour: unknown key", "c.yaml:7: notify.rate_per_hour: wrong type", "c.yaml:9: pipeline.lease: wrong type",
		"c.yaml:4: team.address: not an e-mail address", "c.yaml:6: notify.max_attempts: must not be negative"} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
	if strings.Contains(all, "notify.rate_per_hour: must not be negative") {
		t.Errorf("max_attempts reported under rate_per_hour:\n%s", all)
	}
}

// TestMaskedHidesEverySecret: every form of the DSN's password and the
// webhook URL's token stay out of config check's output.
func TestMaskedHidesEverySecret(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:s3cr3t-pw@db/x",
		"postgres://u@db/x?sslmode=disable&password=s3cr3t-pw",
		"host=db user=u password=s3cr3t-pw dbname=x",
		"host=db user=u password='s3cr3t-pw with space' dbname=x",
		"host=db sslpassword = s3cr3t-pw",
	} {
		c := Defaults()
		c.Store.DSN = dsn
		c.Notify.Alert.WebhookURL = "https://hooks.example.com/services/T00/B00/s3cr3t-token"
		b, _ := c.Masked()
		if strings.Contains(string(b), "s3cr3t") || !strings.Contains(string(b), "*****") {
			t.Errorf("%s: a secret shown:\n%s", dsn, b)
		}
		if !strings.Contains(string(b), "https://hooks.example.com/*****") {
			t.Errorf("webhook URL not masked to its host")
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c, err := Decode("c.yaml", []byte("team:\n  address: nope\n  ticket_prefix: '#'\nstore:\n  driver: mysql\nintake:\n  imap:\n    - address: imap.example.org:143\n      tls: none\n"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, p := range c.Validate() {
		if !p.Warning {
			keys = append(keys, p.Key)
		}
	}
	got := strings.Join(keys, ",")
	for _, k := range []string{"team.address", "team.ticket_prefix", "store.driver", "intake.imap[0].tls", "intake.imap[0].password_file"} {
		if !strings.Contains(got, k) {
			t.Errorf("missing %s in %s", k, got)
		}
	}
}

func TestPathsRelativeToFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.yaml")
	os.WriteFile(p, []byte("crypto:\n  keyring_file: keys/known.asc\n"), 0o600)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Crypto.KeyringFile != filepath.Join(dir, "keys/known.asc") || c.Store.DSN != filepath.Join(dir, "madoguchi-data/madoguchi.db") {
		t.Fatalf("%s %s", c.Crypto.KeyringFile, c.Store.DSN)
	}
}

func TestMaskedHidesPassword(t *testing.T) {
	c := Defaults()
	c.Store.DSN = "postgres://u:s3cr3t-pw@db/x"
	b, _ := c.Masked()
	if strings.Contains(string(b), "s3cr3t-pw") || !strings.Contains(string(b), "postgres://u:*****@db/x") {
		t.Fatal("password shown")
	}
}

func FuzzLoad(f *testing.F) {
	for _, p := range []string{"example.yaml", "production-postgres.yaml", "default.yaml"} {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode("f.yaml", b)
		if c != nil {
			_ = c.Validate()
		}
		var es Errors
		if err != nil && !errors.As(err, &es) {
			t.Fatalf("error of type %T", err)
		}
		for _, e := range es {
			if strings.Contains(e.Error(), "\n") {
				t.Fatalf("multi-line error: %q", e)
			}
		}
	})
}

// TestSecurityTxtExpiresCheck: past is an error, within 30 days a warning.
func TestSecurityTxtExpiresCheck(t *testing.T) {
	for _, c := range []struct {
		exp           string
		err, warnings bool
	}{
		{time.Now().AddDate(0, 0, -1).Format("2006-01-02"), true, false},
		{time.Now().AddDate(0, 0, 10).Format("2006-01-02"), false, true},
		{time.Now().AddDate(0, 3, 0).Format(time.RFC3339), false, false},
		{"next year", true, false},
	} {
		cfg := Defaults()
		cfg.Team.SecurityTxtExpires = c.exp
		var isErr, isWarn bool
		for _, p := range cfg.Validate() {
			if p.Key == "team.security_txt_expires" {
				isErr = isErr || !p.Warning
				isWarn = isWarn || p.Warning
			}
		}
		if isErr != c.err || isWarn != c.warnings {
			t.Errorf("%s: error %v warning %v", c.exp, isErr, isWarn)
		}
	}
}

// TestMissingRFC2350FieldFailsCheck: an empty mandatory team field is an
// error naming its key, not a warning.
func TestMissingRFC2350FieldFailsCheck(t *testing.T) {
	c := Defaults()
	c.Team.Constituency = ""
	for _, p := range c.Validate() {
		if p.Key == "team.constituency" && !p.Warning {
			return
		}
	}
	t.Fatal("no error for team.constituency")
}

// A configuration written for the working directory (as the corpus checker
// writes one into its work directory) still finds its files.
func TestPathsRelativeToWorkingDirWhenNothingBesideFile(t *testing.T) {
	cwd := t.TempDir()
	t.Chdir(cwd)
	os.MkdirAll("corpus/keys", 0o755)
	os.WriteFile("corpus/keys/team.asc", []byte("x"), 0o600)
	os.MkdirAll("work/keys", 0o755) // keys/ exists beside the file: it wins for keys/known.asc
	os.WriteFile("work/m.yaml", []byte("crypto:\n  team_key_files: [corpus/keys/team.asc]\n  keyring_file: keys/known.asc\n"), 0o600)
	c, err := Load("work/m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(cwd, "corpus/keys/team.asc"); c.Crypto.TeamKeyFiles[0] != want {
		t.Errorf("team key %s, want %s", c.Crypto.TeamKeyFiles[0], want)
	}
	if want := filepath.Join("work", "keys/known.asc"); c.Crypto.KeyringFile != want {
		t.Errorf("keyring %s, want %s", c.Crypto.KeyringFile, want)
	}
}

func TestWorkerCount(t *testing.T) {
	if got, want := (Pipeline{}).WorkerCount(), max(2, runtime.GOMAXPROCS(0)); got != want {
		t.Errorf("automatic workers %d, want %d", got, want)
	}
	if got := (Pipeline{Workers: 5}).WorkerCount(); got != 5 {
		t.Errorf("workers 5 gave %d", got)
	}
	c := Defaults()
	c.Pipeline.Workers = -1
	found := false
	for _, p := range c.Validate() {
		found = found || (p.Key == "pipeline.workers" && !p.Warning)
	}
	if !found {
		t.Errorf("workers -1 not refused: %v", c.Validate())
	}
}

// TestOIDCValidated: the OpenID Connect block names what is wrong with it.
func TestOIDCValidated(t *testing.T) {
	c, err := Decode("m.yaml", []byte("http:\n  oidc:\n    issuer: http://login.example.org\n    redirect_url: https://csirt.example.org/callback\n    staff: [not-an-address]\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range c.Validate() {
		if !p.Warning {
			got[p.Key] = true
		}
	}
	for _, k := range []string{"http.oidc.issuer", "http.oidc.redirect_url", "http.oidc.client_id", "http.oidc.staff"} {
		if !got[k] {
			t.Errorf("no problem for %s: %v", k, got)
		}
	}
}
