package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/madoguchi/madoguchi/crypto"
	"github.com/madoguchi/madoguchi/internal/app"
	"github.com/madoguchi/madoguchi/store"
)

func jsonEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc
}

func hasFlag(args []string, f string) ([]string, bool) {
	var out []string
	found := false
	for _, a := range args {
		if a == f || a == "-"+strings.TrimLeft(f, "-") {
			found = true
			continue
		}
		out = append(out, a)
	}
	return out, found
}

// importItem is one message found under an import path.
type importItem struct {
	origin string // file, or file@offset
	raw    []byte
}

// collectImport walks the paths: .eml files, Maildir folders (cur/ and
// new/), mbox files. Bad mbox entries are reported, never silently dropped.
func collectImport(paths []string, bad func(string)) ([]importItem, error) {
	var items []importItem
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, usageErr("%s: cannot read: %v", p, app.UnwrapPathErr(err))
		}
		if st.IsDir() {
			var files []string
			for _, sub := range []string{"cur", "new"} {
				ents, err := os.ReadDir(filepath.Join(p, sub))
				if err != nil {
					continue
				}
				for _, e := range ents {
					if !e.IsDir() {
						files = append(files, filepath.Join(p, sub, e.Name()))
					}
				}
			}
			if len(files) == 0 { // a plain folder of .eml files
				ents, err := os.ReadDir(p)
				if err != nil {
					return nil, usageErr("%s: cannot read: %v", p, app.UnwrapPathErr(err))
				}
				for _, e := range ents {
					if !e.IsDir() && (strings.HasSuffix(e.Name(), ".eml") || strings.HasSuffix(e.Name(), ".mbox")) {
						files = append(files, filepath.Join(p, e.Name()))
					}
				}
			}
			sort.Strings(files)
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					return nil, usageErr("%s: cannot read: %v", f, app.UnwrapPathErr(err))
				}
				items = append(items, splitFile(f, b, bad)...)
			}
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, usageErr("%s: cannot read: %v", p, app.UnwrapPathErr(err))
		}
		items = append(items, splitFile(p, b, bad)...)
	}
	return items, nil
}

// splitFile returns the messages of one file: an mbox (starts with "From ")
// split at "From " lines (mboxrd ">From " unescaped), else one message.
func splitFile(name string, b []byte, bad func(string)) []importItem {
	if !bytes.HasPrefix(b, []byte("From ")) {
		if len(bytes.TrimSpace(b)) == 0 {
			bad(name + ": empty file")
			return nil
		}
		return []importItem{{origin: name, raw: b}}
	}
	var out []importItem
	starts := []int{0}
	for i := 0; i < len(b); {
		j := bytes.Index(b[i:], []byte("\nFrom "))
		if j < 0 {
			break
		}
		starts = append(starts, i+j+1)
		i += j + 1
	}
	for k, s := range starts {
		end := len(b)
		if k+1 < len(starts) {
			end = starts[k+1]
		}
		chunk := b[s:end]
		nl := bytes.IndexByte(chunk, '\n')
		if nl < 0 {
			bad(fmt.Sprintf("%s@%d: truncated entry (separator line only)", name, s))
			continue
		}
		msg := chunk[nl+1:]
		msg = bytes.ReplaceAll(msg, []byte("\n>From "), []byte("\nFrom "))
		if bytes.HasPrefix(msg, []byte(">From ")) {
			msg = msg[1:]
		}
		if len(bytes.TrimSpace(msg)) == 0 {
			bad(fmt.Sprintf("%s@%d: truncated entry (separator line only)", name, s))
			continue
		}
		if !looksLikeMessage(msg) {
			bad(fmt.Sprintf("%s@%d: not a message (no header)", name, s))
			continue
		}
		out = append(out, importItem{origin: fmt.Sprintf("%s@%d", name, s), raw: msg})
	}
	return out
}

func looksLikeMessage(b []byte) bool {
	line := b
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		line = b[:i]
	}
	i := bytes.IndexByte(line, ':')
	return i > 0 && !bytes.ContainsAny(line[:i], " \t")
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (e *env) cmdImport(ctx context.Context, args []string) error {
	args, noAck := hasFlag(args, "--no-ack")
	if len(args) == 0 {
		return usageErr("usage: madoguchi import [--no-ack] PATH...")
	}
	var bads []string
	items, err := collectImport(args, func(s string) { bads = append(bads, s) })
	if err != nil {
		return err
	}
	keys, s, err := e.KeysAndStore(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	proc := e.Processor(s, keys, noAck)
	proc.Log = quietLog()
	tty := isTerminal(os.Stderr)
	counts := map[string]int{}
	for i, it := range items {
		// Spooled already claimed by this import: a daemon sharing the
		// store never takes it (and acknowledges it despite --no-ack),
		// and this import files nothing but what it read.
		id, err := s.Spool(ctx, &store.Message{Channel: store.ChannelImport, Peer: "import:" + it.origin, Raw: it.raw,
			ClaimedBy: "import", Lease: e.Cfg.Pipeline.Lease})
		if err != nil {
			return runErr("spool %s: %v", it.origin, err)
		}
		res, err := proc.Process(ctx, id)
		if err != nil {
			counts["failed"]++
			fmt.Fprintf(e.stderr, "%s: failed: %v\n", it.origin, err)
		} else {
			counts[res.Outcome]++
		}
		if tty {
			fmt.Fprintf(e.stderr, "\r%s %d/%d", progressBar(i+1, len(items), 30), i+1, len(items))
		}
	}
	if tty && len(items) > 0 {
		fmt.Fprintln(e.stderr)
	}
	for _, b := range bads {
		fmt.Fprintln(e.stderr, "skipped "+b)
	}
	fmt.Fprintf(e.stdout, "imported %d messages: %d new incidents, %d attached, %d duplicates, %d reprocessed, %d failed, %d unreadable\n",
		len(items), counts[store.OutcomeNew], counts[store.OutcomeAttached], counts[store.OutcomeDuplicate], counts[store.OutcomeReprocessed], counts["failed"], len(bads))
	if n := counts[store.OutcomeNoted]; n > 0 {
		fmt.Fprintf(e.stdout, "%d noted on the ticket they name without being filed (bounces, unauthenticated mail in the team's name)\n", n)
	}
	if counts["failed"] > 0 || len(bads) > 0 {
		return runErr("%d messages could not be imported", counts["failed"]+len(bads))
	}
	return nil
}

func progressBar(n, total, width int) string {
	if total == 0 {
		return ""
	}
	done := n * width / total
	return "[" + strings.Repeat("=", done) + strings.Repeat(" ", width-done) + "]"
}

func (e *env) cmdIncidents(ctx context.Context, args []string) error {
	args, asJSON := hasFlag(args, "--json")
	if len(args) == 0 {
		return usageErr("usage: madoguchi incidents list|show TICKET [--json]")
	}
	s, err := e.OpenStore(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	switch args[0] {
	case "list":
		f := store.Filter{Limit: 1000}
		for i := 1; i < len(args); i++ {
			switch {
			case args[i] == "--limit" && i+1 < len(args):
				n, err := strconv.Atoi(args[i+1])
				if err != nil || n < 0 {
					return usageErr("incidents list: --limit: a number (0: all)")
				}
				f.Limit = n
				i++
			case args[i] == "--status" && i+1 < len(args):
				f.Status = args[i+1]
				i++
			case args[i] == "--indicator" && i+1 < len(args):
				f.Indicator = args[i+1]
				i++
			case args[i] == "--constituent" && i+1 < len(args):
				f.Constituent = args[i+1]
				i++
			default:
				return usageErr("incidents list: unknown argument %q (--limit N, --status S, --indicator V, --constituent ID, --json)", args[i])
			}
		}
		if f.Limit == 0 {
			f.Limit = math.MaxInt32
		}
		list, err := s.ListIncidents(ctx, f)
		if err != nil {
			return runErr("%v", err)
		}
		if asJSON {
			return jsonEncoder(e.stdout).Encode(list)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TICKET\tSTATUS\tCLASS\tREPORTS\tCREATED\tSUBJECT")
		for _, in := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%d\t%s\t%s\n", in.Ticket, in.Status, in.Taxonomy, in.Type, in.Reports, in.CreatedAt.Format(time.RFC3339), clipRunes(in.Subject, 60))
		}
		return tw.Flush()
	case "show":
		if len(args) != 2 {
			return usageErr("usage: madoguchi incidents show TICKET [--json]")
		}
		d, err := s.GetIncident(ctx, args[1])
		if errors.Is(err, store.ErrNotFound) {
			return runErr("no incident %s", args[1])
		}
		if err != nil {
			return runErr("%v", err)
		}
		if asJSON {
			return jsonEncoder(e.stdout).Encode(d)
		}
		fmt.Fprintf(e.stdout, "%s  %s  %s/%s  TLP:%s\nsubject:   %s\nrequester: %s\ncreated:   %s\n",
			d.Ticket, d.Status, d.Taxonomy, d.Type, orNone(d.TLP), d.Subject, d.Requester, d.CreatedAt.Format(time.RFC3339))
		for _, c := range d.Constituents {
			var vs []string
			for _, in := range c.Indicators {
				vs = append(vs, in.Value)
			}
			fmt.Fprintf(e.stdout, "concerns:  %s (%s)\n", c.ID, strings.Join(vs, ", "))
		}
		for _, r := range d.ReportList {
			fmt.Fprintf(e.stdout, "\nreport %d (spool %d) from %s %s\n", r.ID, r.SpoolID, r.Sender, r.MessageID)
			for _, in := range r.Indicators {
				fmt.Fprintf(e.stdout, "  %-7s %s\n", in.Kind, in.Value)
			}
		}
		fmt.Fprintln(e.stdout, "\nevents:")
		for _, ev := range d.Events {
			fmt.Fprintf(e.stdout, "  %s %-16s %s\n", ev.At.Format(time.RFC3339), ev.Kind, ev.Detail)
		}
		if len(d.Outbox) > 0 {
			fmt.Fprintln(e.stdout, "\noutbox:")
			for _, o := range d.Outbox {
				fmt.Fprintf(e.stdout, "  %d %s to %s: %s (attempts %d) %s\n", o.ID, o.Kind, o.Recipient, o.State, o.Attempts, o.LastError)
			}
		}
		return nil
	}
	return usageErr("unknown incidents subcommand %q", args[0])
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func clipRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func (e *env) cmdReprocess(ctx context.Context, args []string) error {
	var id int64
	var quarantined bool
	var since time.Time
	switch {
	case len(args) == 1 && args[0] == "--quarantined":
		quarantined = true
	case len(args) == 2 && args[0] == "--since":
		t, err := time.Parse("2006-01-02", args[1])
		if err != nil {
			if t, err = time.Parse(time.RFC3339, args[1]); err != nil {
				return usageErr("--since %q: want YYYY-MM-DD or RFC 3339", args[1])
			}
		}
		since = t
	case len(args) == 1:
		n, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || n <= 0 {
			return usageErr("reprocess: %q is not a spool ID", args[0])
		}
		id = n
	default:
		return usageErr("usage: madoguchi reprocess ID|--quarantined|--since DATE")
	}
	keys, s, err := e.KeysAndStore(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	// Claimed for this command: it files exactly the messages asked for,
	// not whatever else the queue holds (a daemon sharing the store files
	// that, with its own options).
	worker := fmt.Sprintf("reprocess/%d", os.Getpid())
	ids, err := s.Requeue(ctx, id, quarantined, since, worker, e.Cfg.Pipeline.Lease)
	if errors.Is(err, store.ErrNotFound) {
		return runErr("no spooled message %d", id)
	}
	if err != nil {
		return runErr("%v", err)
	}
	proc := e.Processor(s, keys, false)
	proc.Log = quietLog()
	counts := map[string]int{}
	for _, sid := range ids {
		res, err := proc.Process(ctx, sid)
		if err != nil {
			counts["failed"]++
			continue
		}
		counts[res.Outcome]++
	}
	n := len(ids)
	fmt.Fprintf(e.stdout, "reprocessed %d messages: %d updated, %d new incidents, %d attached, %d duplicates, %d failed\n",
		n, counts[store.OutcomeReprocessed], counts[store.OutcomeNew], counts[store.OutcomeAttached], counts[store.OutcomeDuplicate], counts["failed"])
	return nil
}

func (e *env) cmdQueue(ctx context.Context, args []string) error {
	args, asJSON := hasFlag(args, "--json")
	state := ""
	if len(args) > 0 {
		state = args[0]
	}
	s, err := e.OpenStore(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	items, err := s.ListQueue(ctx, state, 10000)
	if err != nil {
		return runErr("%v", err)
	}
	if asJSON {
		return jsonEncoder(e.stdout).Encode(items)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SPOOL\tSTATE\tATTEMPTS\tCHANNEL\tRECEIVED\tREASON\tERROR")
	for _, it := range items {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\n", it.SpoolID, it.State, it.Attempts, it.Channel, it.ReceivedAt.Format(time.RFC3339), it.Reason, clipRunes(it.LastError, 60))
	}
	return tw.Flush()
}

func (e *env) cmdKeys(args []string) error {
	if len(args) == 0 {
		return usageErr("usage: madoguchi keys import FILE [--label L] | keys list")
	}
	ring := e.Cfg.Crypto.KeyringFile
	switch args[0] {
	case "list":
		keys, err := e.LoadKeys()
		if err != nil {
			return err
		}
		if keys == nil {
			fmt.Fprintln(e.stdout, "no keys configured")
			return nil
		}
		for _, l := range crypto.Describe(keys, time.Now()) {
			fmt.Fprintln(e.stdout, l)
		}
		return nil
	case "import":
		if len(args) < 2 {
			return usageErr("usage: madoguchi keys import FILE")
		}
		if ring == "" {
			return usageErr("crypto.keyring_file is not configured")
		}
		b, err := readInput(args[1])
		if err != nil {
			return err
		}
		old, err := os.ReadFile(ring)
		if err != nil && !os.IsNotExist(err) {
			return usageErr("%s: cannot read: %v", ring, app.UnwrapPathErr(err))
		}
		merged, added, err := crypto.MergeKeyring(old, b)
		if err != nil {
			return usageErr("%s: %v", args[1], err)
		}
		tmp := ring + ".tmp"
		if err := os.WriteFile(tmp, merged, 0o640); err != nil {
			return runErr("%v", err)
		}
		if err := os.Rename(tmp, ring); err != nil {
			return runErr("%v", err)
		}
		for _, a := range added {
			fmt.Fprintln(e.stdout, "imported "+a)
		}
		return nil
	}
	return usageErr("unknown keys subcommand %q", args[0])
}

func (e *env) cmdConfig(args []string) error {
	if len(args) != 1 || args[0] != "check" {
		return usageErr("usage: madoguchi config check")
	}
	for _, p := range e.Cfg.Validate() {
		fmt.Fprintln(e.stderr, p.String())
	}
	if _, err := e.LoadKeys(); err != nil {
		return err
	}
	cons, err := e.LoadConstituents()
	if err != nil {
		return err
	}
	if e.Cfg.Constituency.File != "" {
		fmt.Fprintf(e.stderr, "constituency.file: %d constituents\n", cons.Set.Len())
	}
	out, err := e.Cfg.Masked()
	if err != nil {
		return runErr("%v", err)
	}
	fmt.Fprintf(e.stdout, "# effective configuration (%s)\n", app.OrDefault(e.Cfg.Path))
	_, err = e.stdout.Write(out)
	return err
}

// quietLog discards: the commands report on their own output.
func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
