// Command madoguchi is the mail and intake gateway of a CSIRT. This file
// only dispatches; each command lives in its own file.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// exitError carries an exit status: 2 for bad usage, configuration or
// input; 1 for failures at run time.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func usageErr(format string, a ...any) error {
	return &exitError{2, fmt.Sprintf(format, a...)}
}
func runErr(format string, a ...any) error { return &exitError{1, fmt.Sprintf(format, a...)} }

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
		var ee *exitError
		code := 1
		if errors.As(err, &ee) {
			code = ee.code
		}
		fmt.Fprintln(os.Stderr, "madoguchi: "+err.Error())
		os.Exit(code)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
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
	env, err := loadEnv(configPath)
	if err != nil {
		return err
	}
	env.stdout, env.stderr = stdout, stderr
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
