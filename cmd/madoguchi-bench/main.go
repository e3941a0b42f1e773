package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// defaultMix are corpus messages, one of each kind the issue names.
var defaultMix = []string{
	"01-phishing-report-plain-en.eml",
	"02-ja-iso2022jp-defacement.eml",
	"07-pgpmime-encrypted-signed-partner.eml",
	"04-forward-as-attachment-rfc822.eml",
	"17-arf-feedback-report.eml",
}

type result struct {
	Messages      int                `json:"messages"`
	Warmup        int                `json:"warmup,omitempty"` // sent and filed before measuring
	Connections   int                `json:"connections"`
	Failed        int64              `json:"failed"`
	SendSeconds   float64            `json:"send_seconds"`
	SendRate      float64            `json:"send_msgs_per_s"`
	SMTPP50ms     float64            `json:"smtp_p50_ms"`
	SMTPP99ms     float64            `json:"smtp_p99_ms"`
	FiledSeconds  float64            `json:"filed_seconds,omitempty"`
	Filed         float64            `json:"filed,omitempty"` // filed while measuring (the warm-up not counted)
	EndToEndRate  float64            `json:"end_to_end_msgs_per_s,omitempty"`
	FiledP50ms    float64            `json:"received_to_filed_p50_ms,omitempty"`
	FiledP99ms    float64            `json:"received_to_filed_p99_ms,omitempty"`
	StageMeanMs   map[string]float64 `json:"stage_mean_ms,omitempty"`
	PeakRSSMiB    float64            `json:"daemon_peak_rss_mib,omitempty"`
	BacklogDrains bool               `json:"backlog_drains_as_fast_as_it_arrives,omitempty"`
}

func main() {
	smtpAddr := flag.String("smtp", "127.0.0.1:2525", "the daemon's (or a peer MTA's) SMTP address; several, comma-separated, share the connections (several daemons on one PostgreSQL)")
	httpAddr := flag.String("http", "127.0.0.1:8025", "the daemons' HTTP listeners (for /metrics), comma-separated; empty: only send")
	n := flag.Int("n", 1000, "messages to send")
	c := flag.Int("c", 8, "concurrent SMTP connections")
	corpus := flag.String("corpus", "testdata/corpus/messages", "directory of the mix")
	mixFlag := flag.String("mix", strings.Join(defaultMix, ","), "comma-separated files of the mix, in -corpus")
	from := flag.String("from", "bench@reporter.example", "envelope sender")
	rcpt := flag.String("rcpt", "csirt@example.org", "recipient")
	perConn := flag.Int("per-conn", 50, "messages per connection before reconnecting")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up waiting for filing after this")
	asJSON := flag.Bool("json", false, "print the result as JSON")
	size := flag.Int("size", 0, "instead of the mix, send plain-text reports of this many bytes (e.g. 20480)")
	rate := flag.Float64("rate", 0, "messages per second to offer, all connections together (0: as fast as they go)")
	warmup := flag.Int("warmup", 0, "first send this many messages the same way, wait until they are filed, and measure only what follows (a daemon that has just started opens its store connections and prepares its statements during its first second)")
	flag.Parse()

	var mix [][]byte
	if *size > 0 {
		mix = [][]byte{synthetic(*size)}
		*mixFlag = ""
	}
	for _, f := range strings.Split(*mixFlag, ",") {
		if f == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(*corpus, strings.TrimSpace(f)))
		if err != nil {
			fatal("mix: %v", err)
		}
		mix = append(mix, b)
	}
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)

	var base metrics
	if *httpAddr != "" {
		var err error
		if base, err = scrape(*httpAddr); err != nil {
			fatal("metrics: %v (is the daemon running? use -http '' to only send)", err)
		}
	}
	var peak atomic.Int64
	stopRSS := make(chan struct{})
	if *httpAddr != "" {
		go func() {
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stopRSS:
					return
				case <-t.C:
					if m, err := scrape(*httpAddr); err == nil {
						if r := int64(m.value("process_resident_memory_bytes", "")); r > peak.Load() {
							peak.Store(r)
						}
					}
				}
			}
		}()
	}

	sd := sender{addrs: strings.Split(*smtpAddr, ","), conns: *c, perConn: *perConn, rate: *rate, from: *from, rcpt: *rcpt, mix: mix, tty: isTerminal()}
	if *warmup > 0 {
		w := sd.send(*warmup, run+"w")
		if *httpAddr != "" {
			if _, err := waitFiled(*httpAddr, base.filed(), base.filed()+float64(w.done), *timeout, false); err != nil {
				fatal("warm-up: %v", err)
			}
			b, err := scrape(*httpAddr)
			if err != nil {
				fatal("metrics after the warm-up: %v", err)
			}
			base = b
		}
	}
	start := time.Now()
	sr := sd.send(*n, run)
	sendDur, lat, done, failed := sr.dur, sr.lat, sr.done, sr.failed
	res := result{Messages: *n, Warmup: *warmup, Connections: *c, Failed: failed, SendSeconds: sendDur.Seconds(),
		SendRate: float64(done) / sendDur.Seconds()}
	ok := lat[:0:0]
	for _, l := range lat {
		if l > 0 {
			ok = append(ok, l)
		}
	}
	slices.Sort(ok)
	res.SMTPP50ms, res.SMTPP99ms = ms(pct(ok, 0.50)), ms(pct(ok, 0.99))

	if *httpAddr != "" {
		last, err := waitFiled(*httpAddr, base.filed(), base.filed()+float64(done), *timeout, sd.tty)
		if err != nil {
			fatal("%v", err)
		}
		filedDur := time.Since(start)
		close(stopRSS)
		res.FiledSeconds = filedDur.Seconds()
		res.Filed = last.filed() - base.filed()
		res.EndToEndRate = float64(done) / filedDur.Seconds()
		res.FiledP50ms = 1000 * last.quantileDelta(base, "madoguchi_received_to_filed_seconds", "", 0.50)
		res.FiledP99ms = 1000 * last.quantileDelta(base, "madoguchi_received_to_filed_seconds", "", 0.99)
		res.StageMeanMs = map[string]float64{}
		for _, st := range []string{"unwrap", "parse", "file"} {
			sel := `stage="` + st + `"`
			cnt := last.value("madoguchi_stage_seconds_count", sel) - base.value("madoguchi_stage_seconds_count", sel)
			if cnt > 0 {
				res.StageMeanMs[st] = 1000 * (last.value("madoguchi_stage_seconds_sum", sel) - base.value("madoguchi_stage_seconds_sum", sel)) / cnt
			}
		}
		// The sampler may not have ticked in a short run: the last scrape
		// counts too.
		res.PeakRSSMiB = max(float64(peak.Load()), last.value("process_resident_memory_bytes", "")) / (1 << 20)
		// The backlog keeps up when filing ends within 10 % of sending.
		res.BacklogDrains = filedDur.Seconds() <= sendDur.Seconds()*1.1+0.5
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
		return
	}
	fmt.Printf("sent %d messages over %d connections in %.2fs: %.0f msg/s, %d failed; SMTP MAIL→250 p50 %.2f ms, p99 %.2f ms\n",
		done, *c, res.SendSeconds, res.SendRate, res.Failed, res.SMTPP50ms, res.SMTPP99ms)
	if *httpAddr != "" {
		fmt.Printf("all filed after %.2fs: %.0f msg/s end to end; 250→filed p50 %.1f ms, p99 %.1f ms; stages (mean ms) %v; daemon peak RSS %.1f MiB\n",
			res.FiledSeconds, res.EndToEndRate, res.FiledP50ms, res.FiledP99ms, res.StageMeanMs, res.PeakRSSMiB)
	}
}

// sender sends messages of the mix over SMTP.
type sender struct {
	addrs      []string
	conns      int
	perConn    int
	rate       float64 // messages per second, 0: as fast as they go
	from, rcpt string
	mix        [][]byte
	tty        bool
}

// sent is what one send did.
type sent struct {
	lat          []time.Duration // per message, 0 if it failed
	done, failed int64
	dur          time.Duration
}

// send sends n messages with Message-IDs tagged tag over the connections.
func (sd *sender) send(n int, tag string) sent {
	// With -rate, message i may start no earlier than start + i/rate: an
	// open-loop offered load, as mail arrives from many senders.
	lat := make([]time.Duration, n)
	var next, failed, done atomic.Int64
	start := time.Now()
	pace := func(i int64) {
		if sd.rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / sd.rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
	}
	var wg sync.WaitGroup
	for k := range sd.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				cl, err := smtp.Dial(sd.addrs[k%len(sd.addrs)])
				if err != nil {
					failed.Add(1)
					time.Sleep(100 * time.Millisecond)
					if next.Load() >= int64(n) {
						return
					}
					continue
				}
				for k := 0; k < sd.perConn; k++ {
					i := next.Add(1) - 1
					if i >= int64(n) {
						_ = cl.Quit()
						return
					}
					pace(i)
					msg := withMessageID(sd.mix[i%int64(len(sd.mix))], fmt.Sprintf("<bench-%s-%d@madoguchi.bench>", tag, i))
					t0 := time.Now()
					err := cl.SendMail(sd.from, []string{sd.rcpt}, bytes.NewReader(msg))
					lat[i] = time.Since(t0)
					if err != nil {
						failed.Add(1)
						break
					}
					if d := done.Add(1); sd.tty && d%50 == 0 {
						fmt.Fprintf(os.Stderr, "\rsent %s %d/%d", bar(int(d), n), d, n)
					}
				}
				_ = cl.Close()
			}
		}()
	}
	wg.Wait()
	dur := time.Since(start)
	if sd.tty {
		fmt.Fprintln(os.Stderr)
	}
	return sent{lat: lat, done: done.Load(), failed: failed.Load(), dur: dur}
}

// waitFiled scrapes the daemons until they have filed want messages in all
// (from when they started waiting, shown with a progress bar on a
// terminal) and returns the last scrape.
func waitFiled(addrs string, from, want float64, timeout time.Duration, tty bool) (metrics, error) {
	deadline := time.Now().Add(timeout)
	var last metrics
	for {
		m, err := scrape(addrs)
		if err == nil {
			last = m
			if tty {
				fmt.Fprintf(os.Stderr, "\rfiled %s %.0f/%.0f", bar(int(m.filed()-from), int(want-from)), m.filed()-from, want-from)
			}
			if m.filed() >= want {
				if tty {
					fmt.Fprintln(os.Stderr)
				}
				return last, nil
			}
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("timed out: %.0f of %.0f filed", last.filed()-from, want-from)
		}
		// Scrapes cost the daemon a store query each: not too often.
		time.Sleep(200 * time.Millisecond)
	}
}

// synthetic is a plain-text phishing report of about size bytes.
func synthetic(size int) []byte {
	var b strings.Builder
	b.WriteString("From: Reporter <reporter@reporter.example>\r\nTo: csirt@example.org\r\nSubject: Phishing site impersonating our bank\r\n" +
		"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		"Hello, the phishing page hxxps://login-bank-example[.]com/verify is live, hosted at 203.0.113.50.\r\n\r\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "Line %d of the logs: GET /verify?session=%08x from 198.51.100.%d, status 200.\r\n", i, i*2654435761, i%16+1)
	}
	return []byte(b.String())
}

var midRE = regexp.MustCompile(`(?im)^message-id:[^\r\n]*\r?\n`)

// withMessageID gives each copy its own Message-ID, so that the gateway's
// de-duplication files every one.
func withMessageID(raw []byte, mid string) []byte {
	end := bytes.Index(raw, []byte("\n\n"))
	if e2 := bytes.Index(raw, []byte("\r\n\r\n")); e2 >= 0 && (end < 0 || e2 < end) {
		end = e2
	}
	if end < 0 {
		end = len(raw)
	}
	hdr := midRE.ReplaceAll(append([]byte{}, raw[:end]...), nil)
	out := append([]byte("Message-ID: "+mid+"\r\n"), hdr...)
	return append(out, raw[end:]...)
}

func pct(s []time.Duration, q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(math.Ceil(q*float64(len(s))))-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func bar(done, total int) string {
	if total <= 0 {
		total = 1
	}
	w := 30
	k := max(0, min(w, done*w/total))
	return "[" + strings.Repeat("#", k) + strings.Repeat(".", w-k) + "]"
}

func isTerminal() bool {
	fi, err := os.Stderr.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func fatal(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "madoguchi-bench: "+format+"\n", a...)
	os.Exit(1)
}

// metrics is one scrape: "name{labels}" → value.
type metrics map[string]float64

// scrape reads /metrics of each comma-separated address and adds them up
// (counters and histogram buckets add; process RSS adds to the total).
func scrape(addrs string) (metrics, error) {
	all := metrics{}
	for _, a := range strings.Split(addrs, ",") {
		m, err := scrapeOne(a)
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			all[k] += v
		}
	}
	return all, nil
}

func scrapeOne(addr string) (metrics, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	m := metrics{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

// value sums the series of name whose labels contain sel ("" for all).
func (m metrics) value(name, sel string) float64 {
	var sum float64
	for k, v := range m {
		base, labels, _ := strings.Cut(k, "{")
		if base == name && (sel == "" || strings.Contains(labels, sel)) {
			sum += v
		}
	}
	return sum
}

// filed counts messages the pipeline finished (any outcome but failed).
func (m metrics) filed() float64 {
	return m.value("madoguchi_pipeline_messages_total", "") - m.value("madoguchi_pipeline_messages_total", `outcome="failed"`)
}

// quantileDelta estimates a quantile of a histogram over what happened
// between base and m, interpolating in the bucket as Prometheus does.
func (m metrics) quantileDelta(base metrics, name, sel string, q float64) float64 {
	type bk struct{ le, n float64 }
	var bs []bk
	for k, v := range m {
		b, labels, _ := strings.Cut(k, "{")
		if b != name+"_bucket" || !strings.Contains(labels, sel) {
			continue
		}
		lm := regexp.MustCompile(`le="([^"]+)"`).FindStringSubmatch(labels)
		if lm == nil {
			continue
		}
		le, err := strconv.ParseFloat(lm[1], 64)
		if err != nil {
			le = math.Inf(1)
		}
		bs = append(bs, bk{le, v - base[k]})
	}
	slices.SortFunc(bs, func(a, b bk) int {
		switch {
		case a.le < b.le:
			return -1
		case a.le > b.le:
			return 1
		}
		return 0
	})
	if len(bs) == 0 || bs[len(bs)-1].n == 0 {
		return 0
	}
	rank := q * bs[len(bs)-1].n
	prevLe, prevN := 0.0, 0.0
	for _, b := range bs {
		if b.n >= rank {
			if math.IsInf(b.le, 1) {
				return prevLe
			}
			if b.n == prevN {
				return b.le
			}
			return prevLe + (b.le-prevLe)*(rank-prevN)/(b.n-prevN)
		}
		prevLe, prevN = b.le, b.n
	}
	return prevLe
}
