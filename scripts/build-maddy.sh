#!/usr/bin/env bash
# Builds maddy v0.8.1 (the Go mail server on go-smtp) for the side-by-side
# benchmark. Its go.mod carries `replace` lines (forks of go-smtp, go-imap),
# which only apply when maddy is the main module, so it is built inside its
# own module directory, not with `go install`.
#
#   scripts/build-maddy.sh [OUT]        (default /tmp/maddy)
set -euo pipefail
out="${1:-/tmp/maddy}"
dir=$(go mod download -json github.com/foxcpp/maddy@v0.8.1 | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
src=$(mktemp -d)
cp -r "$dir"/. "$src"
chmod -R u+w "$src"
(cd "$src" && go build -o "$out" ./cmd/maddy)
rm -rf "$src"
echo "$out"
