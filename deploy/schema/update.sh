#!/bin/sh
# Refreshes compose-spec.json (and the license files that travel with it) from the Go module
# github.com/compose-spec/compose-go/v2, fetched through the Go module proxy by `go mod download`.
# Usage: sh deploy/schema/update.sh [VERSION]     (default: the version recorded in README.md)
# Afterwards update the version, module sum and sha256 lines in README.md (the script prints them);
# test/unit/compose.test.ts checks that README.md and the file agree.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
version=${1:-$(sed -n 's/^- version: `\(v[0-9.]*\)`$/\1/p' "$here/README.md")}
module=github.com/compose-spec/compose-go/v2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
go mod init schemafetch >/dev/null 2>&1
info=$(GOFLAGS=-mod=mod go mod download -json "$module@$version")
dir=$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
sum=$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Sum": "\(.*\)",$/\1/p')
cp "$dir/schema/compose-spec.json" "$here/compose-spec.json"
cp "$dir/LICENSE" "$here/LICENSE"
cp "$dir/NOTICE" "$here/NOTICE"
chmod 644 "$here/compose-spec.json" "$here/LICENSE" "$here/NOTICE"
echo "module:  $module@$version"
echo "sum:     $sum"
echo "sha256:  $(sha256sum "$here/compose-spec.json" | cut -d' ' -f1)"
