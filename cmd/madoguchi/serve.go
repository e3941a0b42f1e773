package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/madoguchi/madoguchi/internal/app"
)

// cmdServe runs the daemon (internal/app): SIGTERM/SIGINT stop it (the
// listeners stop accepting, work in hand finishes, exit 0 within 10 s);
// SIGHUP reloads the team keys, the keyring and the constituents without
// a restart.
func (e *env) cmdServe(ctx context.Context, args []string) error {
	if len(args) > 0 {
		return usageErr("serve takes no arguments")
	}
	a, err := app.New(ctx, e.Env, app.Options{Version: version(), AfterDeliver: e.afterDeliver})
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := a.Reload(); err != nil {
				e.Log.Error("SIGHUP: not everything reloaded; what failed stays as it was", "err", err)
			}
		}
	}()
	return a.Run(ctx, func(ad app.Addrs) {
		fmt.Fprintf(e.stderr, "madoguchi: serving smtp=%s http=%s lmtp=%s\n", ad.SMTP, ad.HTTP, ad.LMTP)
		if ad.Submission != "" {
			e.Log.Info("submission listener", "addr", ad.Submission)
		}
	})
}
