package testenv

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNS is an authoritative DNS server on loopback (UDP and TCP on one
// port) answering from records the test sets: what the sender
// authentication tests resolve instead of the Internet.
type DNS struct {
	// Addr is host:port of the server.
	Addr string

	mu      sync.Mutex
	txt     map[string][]string
	a       map[string][]net.IP
	failing map[string]bool
	udp     *dns.Server
	tcp     *dns.Server
}

// StartDNS starts one, stopped when the test ends.
func StartDNS(t testing.TB) *DNS {
	t.Helper()
	// UDP and TCP on one port number: the UDP port the system picks may
	// be taken for TCP; then another is tried.
	var pc net.PacketConn
	var l net.Listener
	for try := 0; ; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		_ = pc.Close()
		if try == 20 {
			t.Fatal(err)
		}
	}
	d := &DNS{Addr: pc.LocalAddr().String(), txt: map[string][]string{}, a: map[string][]net.IP{}, failing: map[string]bool{}}
	d.udp = &dns.Server{PacketConn: pc, Handler: d}
	d.tcp = &dns.Server{Listener: l, Handler: d}
	started := make(chan struct{}, 2)
	d.udp.NotifyStartedFunc = func() { started <- struct{}{} }
	d.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	go func() { _ = d.udp.ActivateAndServe() }()
	go func() { _ = d.tcp.ActivateAndServe() }()
	<-started
	<-started
	t.Cleanup(func() { _ = d.udp.Shutdown(); _ = d.tcp.Shutdown() })
	return d
}

// TXT sets name's TXT records (each one string, split into 255-byte
// pieces as DNS needs).
func (d *DNS) TXT(name string, values ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.txt[dns.Fqdn(strings.ToLower(name))] = values
}

// A sets name's addresses.
func (d *DNS) A(name string, ips ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []net.IP
	for _, ip := range ips {
		out = append(out, net.ParseIP(ip))
	}
	d.a[dns.Fqdn(strings.ToLower(name))] = out
}

// Fail makes every question about name a SERVFAIL (a DNS outage).
func (d *DNS) Fail(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failing[dns.Fqdn(strings.ToLower(name))] = true
}

// ServeDNS implements dns.Handler.
func (d *DNS) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, question := range q.Question {
		name := strings.ToLower(question.Name)
		if d.failing[name] {
			m.Rcode = dns.RcodeServerFailure
			break
		}
		_, hasTXT := d.txt[name]
		_, hasA := d.a[name]
		if !hasTXT && !hasA {
			m.Rcode = dns.RcodeNameError
			continue
		}
		hdr := dns.RR_Header{Name: question.Name, Class: dns.ClassINET, Ttl: 60}
		switch question.Qtype {
		case dns.TypeTXT:
			for _, v := range d.txt[name] {
				var parts []string
				for len(v) > 255 {
					parts, v = append(parts, v[:255]), v[255:]
				}
				hdr.Rrtype = dns.TypeTXT
				m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: append(parts, v)})
			}
		case dns.TypeA:
			for _, ip := range d.a[name] {
				if ip4 := ip.To4(); ip4 != nil {
					hdr.Rrtype = dns.TypeA
					m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: ip4})
				}
			}
		}
	}
	_ = w.WriteMsg(m)
}
