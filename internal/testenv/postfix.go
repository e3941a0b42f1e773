package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A real Postfix (Debian's postfix 3.7) as the relay: a private instance in
// a temp directory on a loopback port, delivering every recipient to one
// Maildir, and refusing any address at reject.example with 554.

// Postfix is a private Postfix instance.
type Postfix struct {
	t   testing.TB
	dir string
	// Addr is its SMTP listener (host:port).
	Addr string
}

// StartPostfix starts one, stopped and removed when the test ends; the
// test is skipped without postfix (and fails under CI, which installs it)
// or when not root.
func StartPostfix(t testing.TB) *Postfix {
	t.Helper()
	Need(t, "postfix")
	if os.Geteuid() != 0 {
		t.Skip("the Postfix harness runs as root")
	}
	dir, err := os.MkdirTemp("/tmp", "madoguchi-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	for _, d := range []string{"etc", "spool", "data", "mail"} {
		_ = os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	_ = exec.Command("chown", "postfix", filepath.Join(dir, "data")).Run()
	_ = os.Chown(filepath.Join(dir, "mail"), 65534, 65534)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	master, err := os.ReadFile("/usr/share/postfix/master.cf.dist")
	if err != nil {
		t.Fatal(err)
	}
	mc := strings.Replace(string(master), "smtp      inet  n       -       y       -       -       smtpd",
		fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd", port), 1)
	main := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/spool
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file_prefixes = /tmp
maillog_file = %[1]s/maillog
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = check_recipient_access regexp:%[1]s/etc/reject, permit_mynetworks, reject
virtual_mailbox_domains = regexp:%[1]s/etc/domains
virtual_mailbox_maps = regexp:%[1]s/etc/vmailbox
virtual_mailbox_base = %[1]s/mail
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
smtputf8_enable = yes
`, dir)
	files := map[string]string{"etc/main.cf": main, "etc/master.cf": mc, "etc/domains": "/./ OK\n",
		"etc/vmailbox": "/./ all/\n", "etc/reject": "/@reject\\.example$/ REJECT no such user\n"}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := &Postfix{t: t, dir: dir, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	p.Start()
	t.Cleanup(func() {
		p.Stop()
		_ = os.RemoveAll(dir)
	})
	return p
}

// Start starts it (again).
func (p *Postfix) Start() {
	p.t.Helper()
	if out, err := exec.Command("postfix", "-c", filepath.Join(p.dir, "etc"), "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
		p.t.Fatalf("postfix start: %v\n%s\n%s", err, out, log)
	}
	p.waitPort(true)
}

// Stop stops it and waits until its port is closed.
func (p *Postfix) Stop() {
	_ = exec.Command("postfix", "-c", filepath.Join(p.dir, "etc"), "stop").Run()
	p.waitPort(false)
}

func (p *Postfix) waitPort(up bool) {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", p.Addr)
		if err == nil {
			_ = c.Close()
		}
		if (err == nil) == up {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("postfix on %s: not %v in time", p.Addr, up)
}

// Delivered returns the messages in the Maildir, waiting until there are n.
func (p *Postfix) Delivered(n int) [][]byte {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(p.dir, "mail", "all", "new", "*"))
		if len(files) >= n {
			var out [][]byte
			for _, f := range files {
				b, _ := os.ReadFile(f)
				out = append(out, b)
			}
			return out
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
			p.t.Fatalf("%d of %d messages delivered\n%s", len(files), n, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
