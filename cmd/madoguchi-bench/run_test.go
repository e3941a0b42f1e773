package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// TestWarmupIsNotMeasured runs the load tool against a real daemon (SQLite)
// with a warm-up: every message is filed, the result counts only the
// measured ones, and the daemon filed both.
func TestWarmupIsNotMeasured(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	dir := t.TempDir()
	build := func(name, pkg string) string {
		p := filepath.Join(dir, name)
		if out, err := exec.Command("go", "build", "-o", p, pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
		return p
	}
	daemonBin, benchBin := build("madoguchi", "../madoguchi"), build("bench", ".")
	cfg := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `store: {driver: sqlite, dsn: %s/m.db}
intake:
  smtp: {listen: "127.0.0.1:0", recipients: [csirt@example.org]}
notify: {outbox_dir: %s/outbox}
http: {listen: "127.0.0.1:0"}
`, dir, dir), 0o600); err != nil {
		t.Fatal(err)
	}
	d := exec.Command(daemonBin, "--config", cfg, "serve")
	stderr, _ := d.StderrPipe()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Process.Kill(); _ = d.Wait() })
	addrs := make(chan []string, 1)
	go func() {
		re := regexp.MustCompile(`serving smtp=(\S+) http=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrs <- m
			}
		}
	}()
	var smtpAddr, httpAddr string
	select {
	case m := <-addrs:
		smtpAddr, httpAddr = m[1], m[2]
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not start")
	}

	out, err := exec.Command(benchBin, "--smtp", smtpAddr, "--http", httpAddr, "-n", "12", "-c", "2",
		"--size", "4096", "--warmup", "8", "--json", "--timeout", "60s").Output()
	if err != nil {
		t.Fatalf("load tool: %v\n%s", err, out)
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r.Messages != 12 || r.Warmup != 8 || r.Failed != 0 || r.Filed != 12 || r.EndToEndRate <= 0 || r.FiledP99ms <= 0 || r.PeakRSSMiB <= 0 {
		t.Errorf("result %+v: want 12 measured and filed, 8 warm-up, none failed, rates and latencies", r)
	}
	m, err := scrape(httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.filed(); got != 20 {
		t.Errorf("the daemon filed %.0f, want 20 (warm-up and measured)", got)
	}
}
