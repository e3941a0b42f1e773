package main

import (
	"bufio"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/madoguchi/madoguchi/configs"
	"github.com/madoguchi/madoguchi/internal/app"
)

// TestDefaultsThatLookFinished: the Message-IDs of what we send are in
// the team's mail domain even when team.public_url keeps its default, and
// the SMTP listener greets with the machine's name, not "localhost".
func TestDefaultsThatLookFinished(t *testing.T) {
	cfg, err := configs.Decode("c.yaml", []byte("team:\n  address: csirt@acme.example\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := &app.Env{Cfg: cfg}
	if d := e.MessageIDDomain(); d != "acme.example" {
		t.Errorf("Message-ID domain %q, want acme.example", d)
	}
	host, _ := os.Hostname()
	if host == "" || host == "localhost" {
		t.Skip("this machine has no name of its own")
	}
	if h := e.Hostname(); h != host {
		t.Errorf("hostname %q, want %q", h, host)
	}
	dir := t.TempDir()
	d := startDaemon(t, serveConfig(t, dir))
	c, err := net.Dial("tcp", d.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	greeting, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(greeting, "220 "+host+" ") {
		t.Errorf("greeting %q, want the machine's name %s", greeting, host)
	}
}
