package intake

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/textproto"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/madoguchi/madoguchi/internal/hashed"
	"github.com/madoguchi/madoguchi/store"
)

func testCredentials(t *testing.T) *Credentials {
	t.Helper()
	bc, _ := bcrypt.GenerateFromPassword([]byte("alice-secret"), bcrypt.MinCost)
	c, err := ParseCredentials([]byte("# staff\nalice " + string(bc) + "\nbob " + hashed.NewArgon2id("bob-secret") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCredentials(t *testing.T) {
	c := testCredentials(t)
	for _, tc := range []struct {
		user, pass string
		ok         bool
	}{{"alice", "alice-secret", true}, {"alice", "wrong", false}, {"bob", "bob-secret", true}, {"bob", "alice-secret", false}, {"eve", "x", false}} {
		if got := c.Check(tc.user, tc.pass); got != tc.ok {
			t.Errorf("%s/%s: %v", tc.user, tc.pass, got)
		}
	}
	for _, bad := range []string{"alice plain-text-password", "alice", "bob $argon2id$v=19$m=x$y$z"} {
		if _, err := ParseCredentials([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestSubmissionAuthOnlyAfterTLS: the staff submission listener offers
// AUTH only after STARTTLS, refuses MAIL before AUTH (530) and a wrong
// password (535), and takes mail from an authenticated user with PLAIN or
// LOGIN, recording who in the spool.
func TestSubmissionAuthOnlyAfterTLS(t *testing.T) {
	s := openStore(t)
	addr := tcpListener(t)
	srvAddr := addr.Addr().String()
	srv := NewServer(&Backend{Store: s, Log: discardLog(), Credentials: testCredentials(t), RequireAuth: true, Config: SMTPConfig{
		Recipients: []string{"csirt@example.org"}, MaxMessageBytes: 1 << 20, TLS: &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}}})
	go func() { _ = srv.Serve(addr) }()
	t.Cleanup(func() { _ = srv.Close() })

	// In the clear: no AUTH offered, AUTH refused, MAIL refused.
	tp, err := textproto.Dial("tcp", srvAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	_, _, _ = tp.ReadResponse(220)
	_ = tp.PrintfLine("EHLO client.example")
	_, ehlo, _ := tp.ReadResponse(250)
	if strings.Contains(ehlo, "AUTH") {
		t.Fatalf("AUTH offered before TLS: %s", ehlo)
	}
	_ = tp.PrintfLine("AUTH PLAIN %s", base64.StdEncoding.EncodeToString([]byte("\x00alice\x00alice-secret")))
	if code, _, _ := tp.ReadResponse(235); code == 235 {
		t.Fatal("AUTH accepted in the clear")
	}
	_ = tp.PrintfLine("MAIL FROM:<alice@example.org>")
	if code, _, _ := tp.ReadResponse(530); code != 530 {
		t.Fatalf("MAIL before AUTH: %d", code)
	}

	// After STARTTLS: a wrong password is 535, the right one works.
	c, err := smtp.DialStartTLS(srvAddr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("AUTH"); !ok {
		t.Fatal("AUTH not offered after STARTTLS")
	}
	var se *smtp.SMTPError
	if err := c.Auth(sasl.NewPlainClient("", "alice", "wrong")); !errors.As(err, &se) || se.Code != 535 {
		t.Fatalf("wrong password: %v", err)
	}
	_ = c.Close()
	for _, cl := range []sasl.Client{sasl.NewPlainClient("", "alice", "alice-secret"), sasl.NewLoginClient("bob", "bob-secret")} {
		c, err := smtp.DialStartTLS(srvAddr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Auth(cl); err != nil {
			t.Fatalf("auth: %v", err)
		}
		if err := c.SendMail("staff@example.org", []string{"csirt@example.org"}, strings.NewReader(msg)); err != nil {
			t.Fatalf("send: %v", err)
		}
		_ = c.Close()
	}
	if n := queued(t, s); n != 2 {
		t.Fatalf("%d spooled", n)
	}
	m, _ := s.GetMessage(context.Background(), 2)
	if m == nil || !strings.Contains(m.Peer, "auth=bob") || m.Channel != store.ChannelSubmission {
		t.Fatalf("peer of the submitted message: %+v", m)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
