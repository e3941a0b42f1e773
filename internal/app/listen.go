package app

import (
	"net"
	"os"
	"path/filepath"
	"strings"
)

// listenAddr listens on "unix:/path" (a stale socket file is replaced) or a
// TCP host:port.
func listenAddr(a string) (net.Listener, error) {
	if p, ok := strings.CutPrefix(a, "unix:"); ok {
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			_ = os.Remove(p)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return nil, err
		}
		return net.Listen("unix", p)
	}
	return net.Listen("tcp", a)
}
