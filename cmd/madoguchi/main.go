package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/madoguchi/madoguchi/internal/app"

	"github.com/madoguchi/madoguchi/store"
)

// usageErr is an error of usage, configuration or input (exit status 2).
func usageErr(format string, a ...any) error { return app.UsageErr(format, a...) }

// runErr is a failure at run time (exit status 1).
func runErr(format string, a ...any) error { return app.RunErr(format, a...) }

// env is what a command runs with: the application's environment and the
// command's output.
type env struct {
	*app.Env
	stdout, stderr io.Writer
	// afterDeliver is app.Options.AfterDeliver (the crash test).
	afterDeliver func(store.OutboxEntry)
}

const usage = `madoguchi: the mail and intake gateway of a CSIRT

usage: madoguchi [--config FILE] COMMAND [ARGS]

commands:
  serve                         run the daemon
  parse FILE|-                  print the report JSON of one message
  import [--no-ack] PATH...     feed .eml files, Maildir folders and mbox files
  incidents list [--limit N] [--status S] [--indicator V] [--json]
                                the incidents, newest first (1000 unless --limit; 0: all)
  incidents show TICKET [--json]
  reprocess ID|--quarantined|--since DATE
  queue [STATE]                 the work queue (e.g. quarantined)
  keys import FILE | keys list  the keyring of known correspondents
  config check                  validate and print the effective configuration
  rfc2350 [--sign]              print the RFC 2350 profile
  token new NAME                make a staff API token (prints it and its hash line)
  oauth2 login ACCOUNT          sign a mailbox (its username) or the relay ("relay") in
                                with OAuth2 (device code) and keep its refresh token
  version                       version, commit, Go version
`

func main() {
	// Whatever the daemon writes (the database, outbox .eml files, the
	// keyring) holds reports: no one outside the owner and its group
	// reads it, whatever the umask of the shell that started it.
	syscall.Umask(0o027)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ee *app.ExitError
		code := 1
		if errors.As(err, &ee) {
			code = ee.Code
		}
		fmt.Fprintln(os.Stderr, "madoguchi: "+err.Error())
		os.Exit(code)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runWith(ctx, args, stdout, stderr, nil)
}

// runWith is run with app.Options.AfterDeliver (the crash test runs the
// daemon in its own binary with one).
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer, afterDeliver func(store.OutboxEntry)) error {
	configPath := os.Getenv("MADOGUCHI_CONFIG")
	for len(args) > 0 {
		switch {
		case args[0] == "--config" || args[0] == "-config" || args[0] == "-c":
			if len(args) < 2 {
				return usageErr("--config needs a file")
			}
			configPath, args = args[1], args[2:]
			continue
		case len(args[0]) > 9 && args[0][:9] == "--config=":
			configPath, args = args[0][9:], args[1:]
			continue
		case args[0] == "-h" || args[0] == "--help" || args[0] == "help":
			fmt.Fprint(stdout, usage)
			return nil
		}
		break
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageErr("no command given")
	}
	cmd, rest := args[0], args[1:]
	if cmd == "version" {
		return cmdVersion(stdout)
	}
	ae, err := app.LoadEnv(configPath)
	if err != nil {
		return err
	}
	ae.Stderr = stderr
	env := &env{Env: ae, stdout: stdout, stderr: stderr, afterDeliver: afterDeliver}
	switch cmd {
	case "serve":
		return env.cmdServe(ctx, rest)
	case "parse":
		return env.cmdParse(rest)
	case "import":
		return env.cmdImport(ctx, rest)
	case "incidents":
		return env.cmdIncidents(ctx, rest)
	case "reprocess":
		return env.cmdReprocess(ctx, rest)
	case "queue":
		return env.cmdQueue(ctx, rest)
	case "keys":
		return env.cmdKeys(rest)
	case "config":
		return env.cmdConfig(rest)
	case "rfc2350":
		return env.cmdRFC2350(rest)
	case "token":
		return env.cmdToken(rest)
	case "oauth2":
		return env.cmdOAuth2(ctx, rest)
	}
	return usageErr("unknown command %q (see madoguchi --help)", cmd)
}
