package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/madoguchi/madoguchi/internal/app"
	"github.com/madoguchi/madoguchi/pipeline"
	"github.com/madoguchi/madoguchi/profile"
	"github.com/madoguchi/madoguchi/senderauth"
	"github.com/madoguchi/madoguchi/web"
)

// buildVersion is set at link time (-ldflags "-X main.buildVersion=…");
// never assigned at run time.
var buildVersion = "dev"

// version is the version this binary reports: buildVersion, else the
// module version the go command recorded, else "dev".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && buildVersion == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return buildVersion
}

func cmdVersion(w io.Writer) error {
	commit, goVersion := "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				commit = s.Value
			}
		}
	}
	fmt.Fprintf(w, "madoguchi %s (commit %s, %s)\n", version(), commit, goVersion)
	return nil
}

// cmdParse prints one message's report. With --client-ip (and
// --mail-from, --helo) it authenticates the sender as the SMTP listener's
// message would be (a dry run: DNS is asked, nothing is stored); with
// auth.dns_resolver configured it authenticates without them too (DKIM,
// and DMARC by DKIM alone).
func (e *env) cmdParse(args []string) error {
	var file string
	var env senderauth.Envelope
	flags := false
	for i := 0; i < len(args); i++ {
		val := func() (string, error) {
			if i+1 >= len(args) {
				return "", usageErr("parse: %s needs a value", args[i])
			}
			i++
			return args[i], nil
		}
		var err error
		switch a := args[i]; a {
		case "--client-ip":
			env.ClientIP, err = val()
			if err == nil && net.ParseIP(env.ClientIP) == nil {
				err = usageErr("parse: --client-ip: %q is not an IP address", env.ClientIP)
			}
		case "--mail-from":
			env.MailFrom, err = val()
		case "--helo":
			env.Helo, err = val()
		default:
			if file != "" || strings.HasPrefix(a, "--") {
				return usageErr("usage: madoguchi parse [--client-ip IP] [--mail-from ADDR] [--helo NAME] FILE|-")
			}
			file = a
			continue
		}
		if err != nil {
			return err
		}
		flags = true
	}
	if file == "" {
		return usageErr("usage: madoguchi parse [--client-ip IP] [--mail-from ADDR] [--helo NAME] FILE|-")
	}
	args = []string{file}
	raw, err := readInput(args[0])
	if err != nil {
		return err
	}
	keys, err := e.LoadKeysMode(true)
	if err != nil {
		return err
	}
	rep, perr := pipeline.Analyze(raw, keys, e.CryptoLimits(), e.ParseOpts, time.Now())
	if rep == nil {
		return runErr("%s: %v", args[0], perr)
	}
	// The dry run asks DNS when told to: the envelope flags, or a
	// configured auth.dns_resolver (a plain `parse` stays offline and
	// deterministic).
	if c := e.SenderAuth(); c != nil && (flags || e.Cfg.Auth.DNSResolver != "") {
		env.Checked = env.ClientIP != ""
		pipeline.Authenticate(context.Background(), c, raw, env, rep)
	}
	enc := jsonEncoder(e.stdout)
	return enc.Encode(rep)
}

func readInput(path string) ([]byte, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, usageErr("%s: cannot read: %v", path, app.UnwrapPathErr(err))
	}
	return b, nil
}

// cmdToken: `token new NAME` makes a staff API token.
func (e *env) cmdToken(args []string) error {
	if len(args) != 2 || args[0] != "new" || strings.ContainsAny(args[1], " \t\r\n") {
		return usageErr("usage: token new NAME")
	}
	tok, line := web.NewToken(args[1])
	fmt.Fprintf(e.stdout, "token (give it to %s; it is shown only now): %s\nline for http.staff_tokens_file: %s\n", args[1], tok, line)
	return nil
}

// cmdRFC2350 prints the RFC 2350 profile (--lang en|ja), clearsigned with
// --sign.
func (e *env) cmdRFC2350(args []string) error {
	sign, lang := false, "en"
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--sign":
			sign = true
		case a == "--lang" && i+1 < len(args):
			lang = args[i+1]
			i++
		case strings.HasPrefix(a, "--lang="):
			lang = strings.TrimPrefix(a, "--lang=")
		default:
			return usageErr("rfc2350: unknown argument %q (usage: rfc2350 [--lang en|ja] [--sign])", a)
		}
	}
	if lang != "en" && lang != "ja" {
		return usageErr("rfc2350: --lang: en or ja")
	}
	if miss := profile.Missing(e.Cfg.Team); len(miss) > 0 {
		return usageErr("%s: %s: missing (the RFC 2350 profile needs it)", app.OrDefault(e.Cfg.Path), miss[0])
	}
	keys, err := e.LoadKeys()
	if err != nil {
		return err
	}
	text := profile.RFC2350Lang(e.Cfg.Team, e.ProfileKeys(keys), time.Now(), lang)
	if !sign {
		_, err := fmt.Fprint(e.stdout, text)
		return err
	}
	signed, err := keys.Clearsign([]byte(text), time.Now())
	if err != nil {
		return runErr("rfc2350 --sign: %v (configure crypto.team_key_files)", err)
	}
	_, err = e.stdout.Write(signed)
	return err
}
