package testenv

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Dovecot is a private Dovecot (Debian's dovecot-imapd) in a temp
// directory on a loopback port, with one passwd-file user, csirt/secret,
// and a Maildir with INBOX, Processed and Reports. Its login and mail
// processes drop root: logins run as dovenull, mail as nobody.
type Dovecot struct {
	t    testing.TB
	dir  string
	conf string
	Addr string
	// token, in an OAuth2-only Dovecot, gives the harness's own client a
	// bearer token.
	token func() string
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartDovecot starts one for the test and stops it after. Without
// dovecot the test is skipped (fails under CI); it needs root.
func StartDovecot(t testing.TB) *Dovecot { return startDovecot(t, "", nil) }

// StartDovecotOAuth2 starts a Dovecot that accepts nothing but bearer
// tokens (AUTH=XOAUTH2 AUTH=OAUTHBEARER, LOGINDISABLED), validating them by
// RFC 7662 introspection at introspectURL; token gives the harness's own
// client (Append, Count) one. See shared/oauth2-dovecot.md.
func StartDovecotOAuth2(t testing.TB, introspectURL string, token func() string) *Dovecot {
	return startDovecot(t, introspectURL, token)
}

func startDovecot(t testing.TB, introspectURL string, token func() string) *Dovecot {
	t.Helper()
	if _, err := exec.LookPath("dovecot"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("dovecot not installed (CI installs dovecot-imapd)")
		}
		t.Skip("dovecot not installed")
	}
	if os.Geteuid() != 0 {
		t.Skip("the Dovecot harness runs as root (Dovecot drops to dovenull and nobody)")
	}
	dir, err := os.MkdirTemp("", "madoguchi-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	for _, d := range []string{"run", "state", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Chown(filepath.Join(dir, "home"), 65534, 65534)
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte("csirt:{PLAIN}secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	auth := fmt.Sprintf(`auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
`, dir)
	if introspectURL != "" {
		oconf := "introspection_url = " + introspectURL + "\nintrospection_mode = post\nusername_attribute = username\nactive_attribute = active\nactive_value = true\n"
		if err := os.WriteFile(filepath.Join(dir, "oauth2.conf"), []byte(oconf), 0o644); err != nil {
			t.Fatal(err)
		}
		// No failure delay and no per-IP penalty: the tests refuse
		// tokens on purpose and log in often from loopback.
		auth = fmt.Sprintf(`auth_mechanisms = xoauth2 oauthbearer
auth_failure_delay = 0
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = %[1]s/oauth2.conf
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`, dir)
	}
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
%[3]s
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:~/Maildir
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[2]d
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=%[1]s/home/%%u
}
namespace inbox {
  inbox = yes
  separator = /
  mailbox Processed {
    auto = create
  }
  mailbox Reports {
    auto = create
  }
}
`, dir, port, auth)
	d := &Dovecot{t: t, dir: dir, conf: filepath.Join(dir, "dovecot.conf"), Addr: fmt.Sprintf("127.0.0.1:%d", port), token: token}
	if err := os.WriteFile(d.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Start()
	t.Cleanup(func() {
		d.Stop()
		_ = os.RemoveAll(dir)
	})
	return d
}

// Start starts the daemon (again).
func (d *Dovecot) Start() {
	d.t.Helper()
	// A fresh base directory: a socket of the last run that some process
	// still held would make Dovecot refuse to start ("Socket already
	// exists").
	run := filepath.Join(d.dir, "run")
	_ = os.RemoveAll(run)
	if err := os.MkdirAll(run, 0o755); err != nil {
		d.t.Fatal(err)
	}
	// Output goes to a file, not a pipe: the daemon's children inherit it,
	// and a pipe would never reach EOF while they run.
	out, err := os.OpenFile(filepath.Join(d.dir, "dovecot.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command("dovecot", "-c", d.conf)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.out"))
		d.t.Fatalf("dovecot: %v\n%s", err, b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", d.Addr)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.log"))
			d.t.Fatalf("dovecot did not listen on %s\n%s", d.Addr, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the daemon and waits for its port to close.
func (d *Dovecot) Stop() {
	b, err := os.ReadFile(filepath.Join(d.dir, "run", "master.pid"))
	if err != nil {
		return
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	// The master and its children: an imap process serving a logged-in
	// client outlives the master otherwise, and the client never has to
	// log in again.
	// Stopped first, so that it forks nothing between the listing of its
	// children and their end.
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Signal(syscall.SIGSTOP)
	}
	killed := append(childrenOf(pid), pid)
	for _, c := range killed {
		if p, err := os.FindProcess(c); err == nil {
			_ = p.Kill()
		}
	}
	// Every one gone (its sockets no longer answer), or the next Start
	// finds "Socket already exists".
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range killed {
		for time.Now().Before(deadline) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c))
			if err != nil || strings.Contains(string(b), ") Z ") { // gone, or a zombie
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// And the port free.
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", d.Addr)
		if err != nil {
			break
		}
		_ = c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	_ = os.Remove(filepath.Join(d.dir, "run", "master.pid"))
}

// childrenOf lists the processes whose parent is pid (from /proc).
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after
		// its closing parenthesis.
		if i := strings.LastIndexByte(string(b), ')'); i > 0 {
			f := strings.Fields(string(b)[i+1:])
			if len(f) > 1 && f[1] == strconv.Itoa(pid) {
				out = append(out, c)
			}
		}
	}
	return out
}

// Client logs in as the mailbox owner.
func (d *Dovecot) Client() *imapclient.Client {
	d.t.Helper()
	c, err := imapclient.DialInsecure(d.Addr, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	if d.token != nil {
		if err := c.Authenticate(&xoauth2{user: "csirt", token: d.token()}); err != nil {
			d.t.Fatal(err)
		}
		return c
	}
	if err := c.Login("csirt", "secret").Wait(); err != nil {
		d.t.Fatal(err)
	}
	return c
}

// xoauth2 is the harness's own XOAUTH2 client (the one under test is
// internal/oauth's).
type xoauth2 struct{ user, token string }

func (x *xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}
func (x *xoauth2) Next([]byte) ([]byte, error) { return []byte{}, nil }

// Append puts a message into a mailbox with a real IMAP APPEND.
func (d *Dovecot) Append(mailbox, raw string) {
	d.t.Helper()
	c := d.Client()
	defer c.Close()
	cmd := c.Append(mailbox, int64(len(raw)), nil)
	if _, err := io.WriteString(cmd, raw); err != nil {
		d.t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		d.t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		d.t.Fatal(err)
	}
}

// Count returns the messages in a mailbox, and how many are \Seen.
func (d *Dovecot) Count(mailbox string) (n, seen int) {
	d.t.Helper()
	c := d.Client()
	defer c.Close()
	st, err := c.Status(mailbox, &imap.StatusOptions{NumMessages: true, NumUnseen: true}).Wait()
	if err != nil {
		d.t.Fatal(err)
	}
	return int(*st.NumMessages), int(*st.NumMessages - *st.NumUnseen)
}
