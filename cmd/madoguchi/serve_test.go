package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/madoguchi/madoguchi/intake"
	"github.com/madoguchi/madoguchi/internal/stores"
	"github.com/madoguchi/madoguchi/internal/testenv"
	"github.com/madoguchi/madoguchi/store"
)

var binPath string

// dieAfterDelivery, set to 1 in its environment, makes the test binary a
// daemon (madoguchi with the arguments it was given) that dies like
// kill -9 in the one window where an acknowledgement is delivered but not
// yet marked sent: the crash test's, without a test hook in the binary
// operators run.
const dieAfterDelivery = "MADOGUCHI_TEST_DAEMON_DIES_AFTER_DELIVERY"

func TestMain(m *testing.M) {
	if os.Getenv(dieAfterDelivery) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := runWith(ctx, os.Args[1:], os.Stdout, os.Stderr, func(store.OutboxEntry) { os.Exit(137) })
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "madoguchi: "+err.Error())
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func buildBinary(t *testing.T) string {
	t.Helper()
	if binPath != "" {
		return binPath
	}
	p := filepath.Join(os.TempDir(), fmt.Sprintf("madoguchi-test-%d", os.Getpid()))
	out, err := exec.Command("go", "build", "-o", p, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	binPath = p
	return p
}

type daemon struct {
	cmd              *exec.Cmd
	smtp, http, lmtp string
}

func startDaemon(t *testing.T, cfg string, env ...string) *daemon {
	t.Helper()
	bin := buildBinary(t)
	if slices.Contains(env, dieAfterDelivery+"=1") {
		bin = os.Args[0]
	}
	cmd := exec.Command(bin, "--config", cfg, "serve")
	cmd.Env = append(os.Environ(), env...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd}
	sc := bufio.NewScanner(stderr)
	re := regexp.MustCompile(`serving smtp=(\S+) http=(\S+) lmtp=(\S*)`)
	deadline := time.After(20 * time.Second)
	found := make(chan []string, 1)
	go func() {
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
			}
		}
	}()
	select {
	case m := <-found:
		d.smtp, d.http, d.lmtp = m[1], m[2], m[3]
	case <-deadline:
		_ = cmd.Process.Kill()
		t.Fatal("daemon did not start")
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return d
}

func serveConfig(t *testing.T, dir string) string {
	cfg := fmt.Sprintf(`store:
  driver: sqlite
  dsn: %s/m.db
intake:
  smtp:
    listen: 127.0.0.1:0
    recipients: [csirt@example.org]
notify:
  outbox_dir: %s/outbox
http:
  listen: 127.0.0.1:0
pipeline:
  workers: 2
  lease: 1s
`, dir, dir)
	p := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func sendMail(addr, from, to string, n int) error {
	msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: Phishing report %d\r\nMessage-ID: <m%d@reporter.example>\r\n\r\nPhishing page at http://evil%d.example/login\r\n", from, to, n, n, n)
	return smtp.SendMail(addr, nil, from, []string{to}, []byte(msg))
}

// End to end: SMTP in, incident filed, acknowledgement written, wrong
// recipient refused, /readyz, and a clean SIGTERM exit.
func TestServeEndToEnd(t *testing.T) {
	dir := t.TempDir()
	cfg := serveConfig(t, dir)
	d := startDaemon(t, cfg)
	if err := sendMail(d.smtp, "reporter@reporter.example", "csirt@example.org", 1); err != nil {
		t.Fatalf("send: %v", err)
	}
	err := sendMail(d.smtp, "reporter@reporter.example", "someone@elsewhere.example", 2)
	if err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("open relay? %v", err)
	}
	testenv.Need(t, "swaks")
	swOut, err := exec.Command("swaks", "--server", d.smtp, "--from", "swaks@reporter.example", "--to", "csirt@example.org",
		"--header", "Subject: DDoS from 198.51.100.7", "--body", "reflection DDoS from 198.51.100.7").CombinedOutput()
	if err != nil || !strings.Contains(string(swOut), "250") {
		t.Fatalf("swaks: %v\n%s", err, swOut)
	}
	waitFor(t, func() bool {
		ents, _ := os.ReadDir(filepath.Join(dir, "outbox"))
		return len(ents) >= 1
	})
	resp, err := http.Get("http://" + d.http + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp, err = http.Get("http://" + d.http + "/metrics")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics: %v", err)
	}
	// Without a token, only the public documents are served (and the
	// health probes, which carry no data); everything else is 401 or 404.
	// The pages send to the sign-in form; the root to the public page.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]int{"/rfc2350.txt": 200, "/.well-known/security.txt": 200, "/healthz": 200,
		"/api/v1/incidents": 401, "/api/v1/incidents/CSIRT-2026-000001": 401, "/api/v1/reports/1/raw": 401, "/staff/": 303,
		"/staff/login": 200, "/": 303, "/about": 200, "/api/v1/openapi.json": 200, "/debug/pprof/": 404, "/api/": 404, "/api/incidents": 404} {
		resp, err := noRedirect.Get("http://" + d.http + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without a token: %d, want %d", path, resp.StatusCode, want)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "outbox"))
	b, _ := os.ReadFile(filepath.Join(dir, "outbox", ents[0].Name()))
	if !strings.Contains(string(b), "Auto-Submitted: auto-replied") || !strings.Contains(string(b), "CSIRT#") {
		t.Fatalf("ack: %s", b)
	}
	start := time.Now()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("shutdown took %v", time.Since(start))
	}
	out, _, code := runCLI(t, "--config", cfg, "incidents", "list", "--json")
	if code != 0 || strings.Count(out, `"ticket"`) < 1 {
		t.Fatalf("incidents: %s", out)
	}
}

// envInt reads a positive integer from the environment, or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestKillNineLosesNothing is the crash-consistency proof: several clients
// stream messages while the daemon is SIGKILLed at random moments and
// restarted. Every message that got a 250 is filed, exactly once; no
// Message-ID is filed twice (a message committed whose 250 was lost is
// retried by its sender and caught as a duplicate); at most one
// acknowledgement file per incident. CI runs a short version;
// scripts/crash-test.sh runs the long one (MADOGUCHI_CRASH_ROUNDS=20,
// MADOGUCHI_CRASH_MESSAGES=5000, on SQLite and on PostgreSQL, and with
// MADOGUCHI_CRASH_PG_RESTART=1 PostgreSQL restarted under the daemon).
func TestKillNineLosesNothing(t *testing.T) {
	rounds := envInt("MADOGUCHI_CRASH_ROUNDS", 3)
	total := envInt("MADOGUCHI_CRASH_MESSAGES", 600)
	clients := envInt("MADOGUCHI_CRASH_CLIENTS", 4)
	dir := t.TempDir()
	cfg := serveConfig(t, dir)
	if os.Getenv("MADOGUCHI_CRASH_DRIVER") == "postgres" {
		b, _ := os.ReadFile(cfg)
		b = []byte(strings.Replace(string(b), "  driver: sqlite\n  dsn: "+dir+"/m.db", "  driver: postgres\n  dsn: \""+postgresDSN(t)+"\"", 1))
		_ = os.WriteFile(cfg, b, 0o600)
	}
	var mu sync.Mutex
	accepted := map[int]bool{}
	var next atomic.Int64
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	// At least `rounds` kills; more while the stream is not through (each
	// round runs 0.1 to 0.5 s before its SIGKILL), at most 5 × rounds.
	killed := 0
	for round := 0; (round < rounds || next.Load() < int64(total)) && round < 5*rounds; round++ {
		killed++
		d := startDaemon(t, cfg)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					n := int(next.Add(1))
					if n > total {
						return
					}
					// A sender retries what got no 250, as MTAs do; the
					// retry may find the daemon dead, and is retried again
					// in the next round (see the resend below).
					if err := sendMail(d.smtp, "r@reporter.example", "csirt@example.org", n); err == nil {
						mu.Lock()
						accepted[n] = true
						mu.Unlock()
					}
				}
			}()
		}
		if os.Getenv("MADOGUCHI_CRASH_PG_RESTART") == "1" && round%2 == 1 {
			time.Sleep(time.Duration(100+rng.IntN(200)) * time.Millisecond)
			ver := "15"
			if ents, err := os.ReadDir("/etc/postgresql"); err == nil && len(ents) > 0 {
				ver = ents[0].Name()
			}
			if out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", ver, "main", "restart").CombinedOutput(); err != nil {
				t.Fatalf("restart PostgreSQL: %v %s", err, out)
			}
		}
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
		_ = d.cmd.Process.Signal(syscall.SIGKILL)
		close(stop)
		wg.Wait()
		_ = d.cmd.Wait()
	}
	if len(accepted) == 0 {
		t.Fatal("no message was accepted: the test would prove nothing")
	}
	// Senders retry what got no 250 (the daemon is up again now).
	d := startDaemon(t, cfg)
	attempted := int(min(next.Load(), int64(total)))
	for n := 1; n <= attempted; n++ {
		if !accepted[n] {
			if err := sendMail(d.smtp, "r@reporter.example", "csirt@example.org", n); err != nil {
				t.Fatalf("retry of %d: %v", n, err)
			}
		}
	}
	waitDrained(t, cfg)
	out, errOut, code := runCLI(t, "--config", cfg, "incidents", "list", "--json", "--limit", "100000")
	if code != 0 {
		t.Fatalf("incidents list: %d %s", code, errOut)
	}
	if q, _, _ := runCLI(t, "--config", cfg, "queue", "quarantined"); strings.Count(q, "\n") > 1 {
		t.Errorf("quarantined after the crashes:\n%s", q)
	}
	var list []struct {
		Ticket  string `json:"ticket"`
		Subject string `json:"subject"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("incidents: %v", err)
	}
	filed := map[int]int{}
	for _, inc := range list {
		var n int
		if _, err := fmt.Sscanf(inc.Subject, "Phishing report %d", &n); err == nil {
			filed[n]++
		}
	}
	for n := 1; n <= attempted; n++ {
		if filed[n] != 1 {
			t.Errorf("message %d (250 before a crash: %v) filed %d times", n, accepted[n], filed[n])
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "outbox"))
	if len(ents) > len(list) {
		t.Errorf("%d acknowledgement files for %d incidents", len(ents), len(list))
	}
	t.Logf("%d messages, %d with a 250 before a crash, %d SIGKILLs: each filed exactly once", attempted, len(accepted), killed)
}

// waitDrained waits until the daemon's queue has nothing ready or claimed.
func waitDrained(t *testing.T, cfg string) {
	t.Helper()
	waitFor(t, func() bool {
		r, _, rc := runCLI(t, "--config", cfg, "queue", "ready")
		c, _, cc := runCLI(t, "--config", cfg, "queue", "claimed")
		return rc == 0 && cc == 0 && strings.Count(r, "\n") <= 1 && strings.Count(c, "\n") <= 1
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("condition not met within 30s")
}

// TestServeLMTP: swaks speaking LMTP on the daemon's unix socket (as
// Postfix's lmtp transport would) gets a 250 for the recipient, and the
// report is filed and acknowledged.
func TestServeLMTP(t *testing.T) {
	testenv.Need(t, "swaks")
	dir := t.TempDir()
	cfg := serveConfig(t, dir)
	b, _ := os.ReadFile(cfg)
	sock := filepath.Join(dir, "lmtp.sock")
	b = []byte(strings.Replace(string(b), "intake:\n", "intake:\n  lmtp:\n    listen: unix:"+sock+"\n", 1))
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, cfg)
	if d.lmtp != sock {
		t.Fatalf("lmtp listening on %q, want %q", d.lmtp, sock)
	}
	out, err := exec.Command("swaks", "--protocol", "LMTP", "--socket", sock, "--from", "mta@reporter.example", "--to", "csirt@example.org",
		"--header", "Subject: Defacement of www.victim.example", "--body", "defaced: http://www.victim.example/").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "250") {
		t.Fatalf("swaks LMTP: %v\n%s", err, out)
	}
	waitFor(t, func() bool {
		ents, _ := os.ReadDir(filepath.Join(dir, "outbox"))
		return len(ents) >= 1
	})
}

// TestServeSIGHUPReloadsKeyring: a partner's signature is unknown-key until
// the partner's key is added to the keyring file and the daemon gets
// SIGHUP; then the next message from them verifies, without a restart.
func TestServeSIGHUPReloadsKeyring(t *testing.T) {
	testenv.Need(t, "gpg")
	dir := t.TempDir()
	cfg := serveConfig(t, dir)
	ring := filepath.Join(dir, "known.asc")
	b, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, append(b, []byte("crypto:\n  keyring_file: "+ring+"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	g := testenv.NewGPG(t)
	gpg := func(stdin string, args ...string) string { return string(g.Must([]byte(stdin), args...)) }
	gpg("", "--quick-gen-key", "Partner CERT <cert@partner.example>", "ed25519", "sign", "1y")
	d := startDaemon(t, cfg)
	send := func(n int) {
		t.Helper()
		signed := gpg(fmt.Sprintf("Scanning from 192.0.2.%d seen by our sensors.\n", n), "--clearsign")
		msg := fmt.Sprintf("From: cert@partner.example\r\nTo: csirt@example.org\r\nSubject: Notice %d\r\nMessage-ID: <n%d@partner.example>\r\n\r\n%s", n, n, signed)
		if err := smtp.SendMail(d.smtp, nil, "cert@partner.example", []string{"csirt@example.org"}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	signatureOf := func(subject string) string {
		out, _, code := runCLI(t, "--config", cfg, "incidents", "list", "--json")
		if code != 0 {
			return ""
		}
		var list []struct {
			Ticket  string `json:"ticket"`
			Subject string `json:"subject"`
		}
		_ = json.Unmarshal([]byte(out), &list)
		for _, inc := range list {
			if inc.Subject != subject {
				continue
			}
			out, _, _ = runCLI(t, "--config", cfg, "incidents", "show", inc.Ticket, "--json")
			var det struct {
				Reports []struct {
					Report struct {
						Signature struct {
							Status string `json:"status"`
						} `json:"signature"`
					} `json:"report"`
				} `json:"report_list"`
			}
			_ = json.Unmarshal([]byte(out), &det)
			if len(det.Reports) > 0 {
				return det.Reports[0].Report.Signature.Status
			}
		}
		return ""
	}
	send(1)
	waitFor(t, func() bool { return signatureOf("Notice 1") != "" })
	if got := signatureOf("Notice 1"); got != "unknown-key" {
		t.Fatalf("before the key is known: %q", got)
	}
	if err := os.WriteFile(ring, []byte(gpg("", "--armor", "--export", "cert@partner.example")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(metrics(t, d), `madoguchi_key_reloads_total{result="ok"} 1`) })
	send(2)
	waitFor(t, func() bool { return signatureOf("Notice 2") != "" })
	if got := signatureOf("Notice 2"); got != "good" {
		t.Fatalf("after SIGHUP: %q", got)
	}
	if d.cmd.ProcessState != nil {
		t.Fatal("the daemon exited on SIGHUP")
	}
}

// TestHostileInputLiveDaemon: nasty messages through SMTP into a running
// daemon: a compression bomb, 100-level nesting, a 1 MB header, invalid
// UTF-8 and encodings everywhere, 10,000 parts, a 1 MB base64 line (a 10
// MB one is refused at the line limit). Each gets a 250 and is spooled; each ends filed or quarantined with a reason
// (visible in the CLI); the daemon stays up with its RSS under 512 MiB.
func TestHostileInputLiveDaemon(t *testing.T) {
	dir := t.TempDir()
	cfg := serveConfig(t, dir)
	d := startDaemon(t, cfg)
	bomb, _ := os.ReadFile("../../testdata/corpus/messages/16-decompression-bomb.eml")
	nested := "From: a@x.example\r\nSubject: nested\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
	for i := 0; i < 100; i++ {
		nested += fmt.Sprintf("--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i, i+1)
	}
	nested += "--b100\r\nContent-Type: text/plain\r\n\r\ndeep http://deep.example/\r\n"
	var parts strings.Builder
	parts.WriteString("From: a@x.example\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=p\r\n\r\n")
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&parts, "--p\r\nContent-Type: text/plain\r\n\r\npart %d\r\n", i)
	}
	parts.WriteString("--p--\r\n")
	msgs := map[string]string{
		"bomb":       string(bomb),
		"nested":     nested,
		"header":     "From: a@x.example\r\nSubject: big header\r\nX-Junk: " + strings.Repeat("j", 1000<<10) + "\r\n\r\nbody\r\n",
		"invalid":    "From: \xff\xfe@x.example\r\nSubject: =?utf-8?B?////?= \x80\x81\r\nContent-Type: text/plain; charset=x-no-such\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64 \xc3\x28\r\n",
		"parts":      parts.String(),
		"base64line": "From: a@x.example\r\nSubject: b64\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + strings.Repeat("QUJD", 1000<<10/4) + "\r\n",
	}
	// A line over the 1 MiB line limit is refused (the connection closed
	// with 500) rather than read into memory: no 250, nothing spooled.
	tooLong := "From: a@x.example\r\nSubject: 10 MB line\r\n\r\n" + strings.Repeat("QUJD", 10<<20/4) + "\r\n"
	if err := smtp.SendMail(d.smtp, nil, "a@x.example", []string{"csirt@example.org"}, []byte(tooLong)); err == nil {
		t.Fatal("a 10 MB line got a 250")
	}
	for name, m := range msgs {
		if err := smtp.SendMail(d.smtp, nil, "a@x.example", []string{"csirt@example.org"}, []byte(m)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	waitDrained(t, cfg)
	out, _, _ := runCLI(t, "--config", cfg, "incidents", "list", "--json", "--limit", "0")
	q, _, _ := runCLI(t, "--config", cfg, "queue", "quarantined")
	filed := strings.Count(out, `"ticket"`)
	quarantined := max(strings.Count(q, "\n")-1, 0)
	if filed+quarantined != len(msgs) {
		t.Fatalf("%d sent, %d filed, %d quarantined:\n%s", len(msgs), filed, quarantined, q)
	}
	resp, err := http.Get("http://" + d.http + "/metrics")
	if err != nil {
		t.Fatalf("the daemon is down: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	var rss float64
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "process_resident_memory_bytes ") {
			_, _ = fmt.Sscanf(strings.TrimPrefix(line, "process_resident_memory_bytes "), "%g", &rss)
		}
	}
	if rss == 0 || rss > 512<<20 {
		t.Fatalf("RSS %.0f MiB", rss/(1<<20))
	}
	t.Logf("%d hostile messages: %d filed, %d quarantined; daemon RSS %.0f MiB", len(msgs), filed, quarantined, rss/(1<<20))
}

// TestTwoDaemonsOnePostgres: two daemons on one PostgreSQL share the queue
// without coordination code: messages sent to either are each filed once,
// both daemons file some, and ticket numbers stay unique and gap-free.
func TestTwoDaemonsOnePostgres(t *testing.T) {
	dir := t.TempDir()
	cfg := serveConfig(t, dir)
	b, _ := os.ReadFile(cfg)
	b = []byte(strings.Replace(string(b), "  driver: sqlite\n  dsn: "+dir+"/m.db", "  driver: postgres\n  dsn: \""+postgresDSN(t)+"\"", 1))
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	d1, d2 := startDaemon(t, cfg), startDaemon(t, cfg)
	const n = 200
	var wg sync.WaitGroup
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d := d1
			if i%2 == 0 {
				d = d2
			}
			if err := sendMail(d.smtp, "r@reporter.example", "csirt@example.org", i); err != nil {
				t.Errorf("send %d: %v", i, err)
			}
		}(i)
		if i%8 == 0 { // 4 connections per daemon at a time, under the per-IP limit
			wg.Wait()
		}
	}
	wg.Wait()
	filedBy := func(d *daemon) float64 {
		resp, err := http.Get("http://" + d.http + "/metrics")
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var sum float64
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, "madoguchi_pipeline_messages_total{") && !strings.Contains(line, "failed") {
				var v float64
				_, _ = fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
				sum += v
			}
		}
		return sum
	}
	waitFor(t, func() bool { return filedBy(d1)+filedBy(d2) >= n })
	out, _, _ := runCLI(t, "--config", cfg, "incidents", "list", "--json", "--limit", "0")
	var list []struct {
		Ticket  string `json:"ticket"`
		Subject string `json:"subject"`
	}
	_ = json.Unmarshal([]byte(out), &list)
	subjects, tickets := map[string]int{}, map[string]bool{}
	for _, inc := range list {
		subjects[inc.Subject]++
		tickets[inc.Ticket] = true
	}
	if len(list) != n || len(subjects) != n || len(tickets) != n {
		t.Fatalf("%d incidents, %d subjects, %d tickets; want %d each", len(list), len(subjects), len(tickets), n)
	}
	for i := 1; i <= n; i++ {
		if !tickets[fmt.Sprintf("CSIRT#%d-%06d", time.Now().Year(), i)] {
			t.Fatalf("ticket number %d missing: numbers are not gap-free", i)
		}
	}
	a, b2 := filedBy(d1), filedBy(d2)
	if a == 0 || b2 == 0 {
		t.Fatalf("one daemon did all the work: %v and %v", a, b2)
	}
	t.Logf("filed %v by one daemon and %v by the other, each message once", a, b2)
}

// TestKilledBetweenSendAndMark: the daemon dies (exit 137, as under kill
// -9) right after the relay accepted an acknowledgement and before the row
// was marked sent. After a restart the acknowledgement goes out once more,
// with the same Message-ID, and then never again: the documented bound.
func TestKilledBetweenSendAndMark(t *testing.T) {
	relayStore, err := stores.Open(context.Background(), stores.SQLite, filepath.Join(t.TempDir(), "relay.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer relayStore.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relay := intake.NewServer(&intake.Backend{Store: relayStore, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Config: intake.SMTPConfig{Recipients: []string{"r@reporter.example"}, MaxMessageBytes: 1 << 20}})
	go func() { _ = relay.Serve(l) }()
	defer relay.Close()
	relayed := func() []string {
		var ids []string
		for i := int64(1); ; i++ {
			m, err := relayStore.GetMessage(context.Background(), i)
			if err != nil {
				return ids
			}
			for _, line := range strings.Split(string(m.Raw), "\r\n") {
				if strings.HasPrefix(line, "Message-ID: ") {
					ids = append(ids, strings.TrimPrefix(line, "Message-ID: "))
				}
			}
		}
	}

	dir := t.TempDir()
	cfg := serveConfig(t, dir)
	b, _ := os.ReadFile(cfg)
	b = []byte(strings.Replace(string(b), "notify:\n", "notify:\n  relay: "+l.Addr().String()+"\n  relay_tls: none\n", 1))
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, cfg, dieAfterDelivery+"=1")
	if err := sendMail(d.smtp, "r@reporter.example", "csirt@example.org", 1); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 137 {
			t.Fatalf("the daemon did not die after the delivery: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery")
	}
	if ids := relayed(); len(ids) != 1 {
		t.Fatalf("relayed before the crash: %v", ids)
	}
	startDaemon(t, cfg) // the claim's lease (5 s here) runs out, the row is sent again
	waitFor(t, func() bool { return len(relayed()) >= 2 })
	time.Sleep(6 * time.Second) // long enough for a third copy, were there one
	ids := relayed()
	if len(ids) != 2 || ids[0] != ids[1] {
		t.Fatalf("relayed: %v (want the same Message-ID twice)", ids)
	}
	out, _, _ := runCLI(t, "--config", cfg, "incidents", "list", "--json")
	var list []struct {
		Ticket string `json:"ticket"`
	}
	_ = json.Unmarshal([]byte(out), &list)
	if len(list) != 1 {
		t.Fatalf("incidents: %s", out)
	}
	show, _, _ := runCLI(t, "--config", cfg, "incidents", "show", list[0].Ticket, "--json")
	if !strings.Contains(show, `"state": "sent"`) {
		t.Fatalf("the outbox row is not marked sent:\n%s", show)
	}
}

// TestIMAPTakeoverAfterKill: two daemons poll one Dovecot mailbox through
// one PostgreSQL. The one holding the mailbox is killed with SIGKILL; its
// connection, and with it its advisory lock, die with it, and the other
// daemon takes the mailbox over: every message appended is spooled and
// filed exactly once, and leaves INBOX.
func TestIMAPTakeoverAfterKill(t *testing.T) {
	dc := testenv.StartDovecot(t)
	dir := t.TempDir()
	cfg := serveConfig(t, dir)
	pw := filepath.Join(dir, "imap-password")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cfg)
	s := strings.Replace(string(b), "  driver: sqlite\n  dsn: "+dir+"/m.db", "  driver: postgres\n  dsn: \""+postgresDSN(t)+"\"", 1)
	s = strings.Replace(s, "intake:\n", "intake:\n  imap:\n    - address: "+dc.Addr+"\n      tls: none\n      username: csirt\n      password_file: "+pw+
		"\n      mailbox: INBOX\n      processed_mailbox: Processed\n      poll_interval: 500ms\n", 1)
	if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	imapMsg := func(n int) string {
		return fmt.Sprintf("From: r%d@reporter.example\r\nSubject: IMAP report %d\r\nMessage-ID: <imap%d@reporter.example>\r\n\r\nhttp://evil%d.example/\r\n", n, n, n, n)
	}
	subjects := func() map[string]int {
		out, _, _ := runCLI(t, "--config", cfg, "incidents", "list", "--json", "--limit", "0")
		var list []struct {
			Subject string `json:"subject"`
		}
		_ = json.Unmarshal([]byte(out), &list)
		m := map[string]int{}
		for _, inc := range list {
			m[inc.Subject]++
		}
		return m
	}
	dc.Append("INBOX", imapMsg(1))
	a := startDaemon(t, cfg)
	waitFor(t, func() bool { return subjects()["IMAP report 1"] == 1 })
	startDaemon(t, cfg) // waits for the mailbox while the first holds it
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	_ = a.cmd.Wait()
	for n := 2; n <= 4; n++ {
		dc.Append("INBOX", imapMsg(n))
	}
	waitFor(t, func() bool {
		got := subjects()
		n, _ := dc.Count("INBOX")
		return got["IMAP report 2"] == 1 && got["IMAP report 3"] == 1 && got["IMAP report 4"] == 1 && n == 0
	})
	for subj, n := range subjects() {
		if n != 1 {
			t.Errorf("%q filed %d times", subj, n)
		}
	}
	if n, _ := dc.Count("Processed"); n != 4 {
		t.Fatalf("%d messages in Processed, want 4", n)
	}
}

// editConfig replaces the first old in the configuration file with new.
func editConfig(t *testing.T, cfg, old, new string) {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil || !strings.Contains(string(b), old) {
		t.Fatalf("config %s: %v, or no %q in it", cfg, err, old)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// http.pprof: true serves Go's profiler to a loopback client (off, the
// end-to-end test above finds 404).
func TestServePprofWhenAskedFor(t *testing.T) {
	cfg := serveConfig(t, t.TempDir())
	editConfig(t, cfg, "http:\n", "http:\n  pprof: true\n")
	d := startDaemon(t, cfg)
	resp, err := http.Get("http://" + d.http + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /debug/pprof/ from loopback with http.pprof: %d, want 200", resp.StatusCode)
	}
}

// pipeline.enabled: false is an intake-only daemon: the message gets its
// 250 and is spooled, and stays in the queue, unfiled, for a daemon that
// runs workers, which files it.
func TestServeIntakeOnly(t *testing.T) {
	dir := t.TempDir()
	cfg := serveConfig(t, dir)
	editConfig(t, cfg, "pipeline:\n", "pipeline:\n  enabled: false\n")
	d := startDaemon(t, cfg)
	if err := sendMail(d.smtp, "reporter@example.net", "csirt@example.org", 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // workers, were they running, file within the lease of 1s
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	_ = d.cmd.Wait()
	counts := func() map[string]int {
		s, err := stores.Open(context.Background(), stores.SQLite, filepath.Join(dir, "m.db"), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		c, err := s.QueueCounts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := counts(); c[store.StateReady] != 1 || c[store.StateDone] != 0 {
		t.Fatalf("intake-only daemon: queue %v, want the message ready and nothing done", c)
	}
	editConfig(t, cfg, "pipeline:\n  enabled: false\n", "pipeline:\n")
	d = startDaemon(t, cfg)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if ents, _ := os.ReadDir(filepath.Join(dir, "outbox")); len(ents) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	_ = d.cmd.Wait()
	if c := counts(); c[store.StateDone] != 1 {
		t.Fatalf("after a daemon with workers: queue %v, want the message done", c)
	}
}

// TestServeReadsSecretsBeforeListening: a missing secret file stops serve
// with exit status 2 naming its key before anything is opened or bound
// (the store is not even created, no listener ever answered).
func TestServeReadsSecretsBeforeListening(t *testing.T) {
	for key, extra := range map[string]string{
		"notify.alert.webhook_secret_file": "notify:\n  alert:\n    classifications: [intrusions]\n    webhook_url: http://127.0.0.1:9/x\n    webhook_secret_file: %s/missing\n",
		"intake.imap[0].password_file":     "intake:\n  imap:\n    - address: 127.0.0.1:1143\n      tls: none\n      username: csirt\n      password_file: %s/missing\n      mailbox: INBOX\n",
		"notify.relay_password_file":       "notify:\n  relay: 127.0.0.1:2526\n  relay_username: u\n  relay_password_file: %s/missing\n",
		"http.staff_tokens_file":           "http:\n  staff_tokens_file: %s/missing\n",
	} {
		t.Run(key, func(t *testing.T) {
			dir := t.TempDir()
			cfg := fmt.Sprintf("store:\n  driver: sqlite\n  dsn: %s/m.db\n", dir) + fmt.Sprintf(extra, dir)
			p := filepath.Join(dir, "m.yaml")
			if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, buildBinary(t), "--config", p, "serve")
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), key) {
				t.Fatalf("serve: %v, want exit status 2 naming %s:\n%s", err, key, out)
			}
			if strings.Contains(string(out), "serving") {
				t.Fatalf("listeners were bound:\n%s", out)
			}
			if _, err := os.Stat(filepath.Join(dir, "m.db")); err == nil {
				t.Fatal("the store was opened before the secrets were read")
			}
		})
	}
}

// TestHTTPConnectionsBounded: the HTTP listener takes at most
// http.max_connections at once, and connections that send nothing (or
// idle after a request) are closed by the timeouts, so silent clients
// cannot hold it (nor the descriptors SMTP and the store share).
func TestHTTPConnectionsBounded(t *testing.T) {
	dir := t.TempDir()
	cfg := serveConfig(t, dir)
	editConfig(t, cfg, "http:\n  listen: 127.0.0.1:0\n", "http:\n  listen: 127.0.0.1:0\n  max_connections: 3\n  read_timeout: 1s\n  idle_timeout: 1s\n")
	d := startDaemon(t, cfg)
	var silent []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", d.http)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	// A fourth client waits for a slot and is served once the silent
	// ones are cut off.
	start := time.Now()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + d.http + "/healthz")
	if err != nil {
		t.Fatalf("a client behind three silent connections: %v", err)
	}
	resp.Body.Close()
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("served after %v", el)
	}
	for i, c := range silent {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("silent connection %d was not closed: %v", i, err)
		}
	}
}

// TestFilesNotWorldReadable: the database and the outbox's .eml files are
// the owner's (and its group's) alone, whatever the umask serve is
// started under; a message over 1 MiB is held under spill_dir, not /tmp.
func TestFilesNotWorldReadable(t *testing.T) {
	dir := t.TempDir()
	cfg := serveConfig(t, dir)
	editConfig(t, cfg, "    recipients: [csirt@example.org]\n", "    recipients: [csirt@example.org]\n    spill_dir: "+dir+"/spill\n")
	cmd := exec.Command("sh", "-c", `umask 000; exec "$0" "$@"`, buildBinary(t), "--config", cfg, "serve")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	smtpAddr := ""
	for sc.Scan() {
		if m := regexp.MustCompile(`serving smtp=(\S+)`).FindStringSubmatch(sc.Text()); m != nil {
			smtpAddr = m[1]
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	if smtpAddr == "" {
		t.Fatal("daemon did not start")
	}
	big := "From: r@reporter.example\r\nSubject: big\r\nMessage-ID: <big@reporter.example>\r\n\r\n" + strings.Repeat("192.0.2.1 scanned us\r\n", 80000)
	if err := smtp.SendMail(smtpAddr, nil, "r@reporter.example", []string{"csirt@example.org"}, []byte(big)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		ents, _ := os.ReadDir(filepath.Join(dir, "outbox"))
		return len(ents) >= 1
	})
	check := func(p string, want os.FileMode) {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&^want != 0 {
			t.Errorf("%s is %v, want at most %v", filepath.Base(p), fi.Mode().Perm(), want)
		}
	}
	check(filepath.Join(dir, "m.db"), 0o600)
	ents, _ := os.ReadDir(filepath.Join(dir, "outbox"))
	for _, e := range ents {
		check(filepath.Join(dir, "outbox", e.Name()), 0o640)
	}
	check(filepath.Join(dir, "spill"), 0o700)
}

// TestHugeReportBounded: a report naming a hundred thousand addresses
// files the indicator limit, with a warning staff see, and does not
// delay another sender's 250.
func TestHugeReportBounded(t *testing.T) {
	dir := t.TempDir()
	cfg := serveConfig(t, dir)
	d := startDaemon(t, cfg)
	var b strings.Builder
	b.WriteString("From: feed@partner.example\r\nTo: csirt@example.org\r\nSubject: scanners\r\nMessage-ID: <huge@partner.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nThe attached CSV lists the scanners we saw.\r\n--B\r\nContent-Type: text/csv; name=scanners.csv\r\nContent-Disposition: attachment; filename=scanners.csv\r\n\r\nip,first_seen\r\n")
	for i := range 100000 {
		fmt.Fprintf(&b, "10.%d.%d.%d,2026-12-01\r\n", i/65536, i/256%256, i%256)
	}
	b.WriteString("--B--\r\n")
	if err := smtp.SendMail(d.smtp, nil, "feed@partner.example", []string{"csirt@example.org"}, []byte(b.String())); err != nil {
		t.Fatal(err)
	}
	// Another sender while the huge report is parsed and filed.
	var worst time.Duration
	for i := range 5 {
		start := time.Now()
		if err := sendMail(d.smtp, "other@reporter.example", "csirt@example.org", 100+i); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, time.Since(start))
	}
	if worst > 2*time.Second {
		t.Errorf("another sender's 250 took %v", worst)
	}
	waitDrained(t, cfg)
	out, _, code := runCLI(t, "--config", cfg, "incidents", "list", "--json")
	var list []struct {
		Ticket  string `json:"ticket"`
		Subject string `json:"subject"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("list: %s", out)
	}
	for _, in := range list {
		if in.Subject != "scanners" {
			continue
		}
		show, _, _ := runCLI(t, "--config", cfg, "incidents", "show", in.Ticket, "--json")
		if n := len(regexp.MustCompile(`"kind":\s*"ipv4"`).FindAllString(show, -1)); n > 10000 || n < 1000 {
			t.Errorf("%d IPv4 indicators filed, want at most the limit of 10000", n)
		}
		if !strings.Contains(show, "more indicators than the limit of 10000") {
			t.Errorf("no warning for staff in the report")
		}
		return
	}
	t.Fatal("the huge report was not filed")
}

// TestServeIMAPOAuth2: the daemon polls a Dovecot that takes nothing but
// bearer tokens, its refresh token seeded from refresh_token_file and
// rotated on every use; when the token endpoint revokes it, the mailbox
// stops (the metric counts the refusal) while SMTP intake goes on, and a
// restarted daemon still uses the rotated token, not the spent seed.
func TestServeIMAPOAuth2(t *testing.T) {
	ts := testenv.NewTokenServer(t, "csirt")
	dc := testenv.StartDovecotOAuth2(t, ts.URL+"/introspect", ts.AccessToken)
	dir := t.TempDir()
	cfg := serveConfig(t, dir)
	seed := filepath.Join(dir, "refresh-token")
	if err := os.WriteFile(seed, []byte(ts.NewRefreshToken()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	editConfig(t, cfg, "intake:\n", "intake:\n  imap:\n    - address: "+dc.Addr+"\n      tls: none\n      username: csirt\n      auth: oauth2\n"+
		"      oauth2:\n        token_url: "+ts.URL+"/token\n        client_id: madoguchi\n        refresh_token_file: "+seed+"\n"+
		"      mailbox: INBOX\n      processed_mailbox: Processed\n      poll_interval: 500ms\n")
	filed := func(subject string) bool {
		out, _, _ := runCLI(t, "--config", cfg, "incidents", "list", "--json", "--limit", "0")
		return strings.Contains(out, subject)
	}
	imapMsg := func(n int) string {
		return fmt.Sprintf("From: r%d@reporter.example\r\nSubject: OAuth2 report %d\r\nMessage-ID: <oauth%d@reporter.example>\r\n\r\nhttp://evil%d.example/\r\n", n, n, n, n)
	}
	dc.Append("INBOX", imapMsg(1))
	d := startDaemon(t, cfg)
	waitFor(t, func() bool { return filed("OAuth2 report 1") })
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	_ = d.cmd.Wait()

	// Restarted: the seed was spent by the rotation; the store's token works.
	dc.Append("INBOX", imapMsg(2))
	d = startDaemon(t, cfg)
	waitFor(t, func() bool { return filed("OAuth2 report 2") })

	// Revoked, and the IMAP server restarted so that the poller logs in
	// again: refused, counted; SMTP still takes mail.
	ts.RevokeAll()
	dc.Stop()
	dc.Start()
	dc.Append("INBOX", imapMsg(3))
	waitFor(t, func() bool {
		resp, err := http.Get("http://" + d.http + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return regexp.MustCompile(`madoguchi_oauth2_errors_total\{account="imap:csirt@[^"]+",error="invalid_grant"\} [1-9]`).Match(b)
	})
	if err := sendMail(d.smtp, "reporter@reporter.example", "csirt@example.org", 7); err != nil {
		t.Fatalf("SMTP while the mailbox's credential is refused: %v", err)
	}
	waitFor(t, func() bool { return filed("Phishing report 7") })
	if filed("OAuth2 report 3") {
		t.Fatal("a message was polled with a revoked credential")
	}
}

// metrics is the daemon's /metrics page.
func metrics(t *testing.T, d *daemon) string {
	t.Helper()
	resp, err := http.Get("http://" + d.http + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
