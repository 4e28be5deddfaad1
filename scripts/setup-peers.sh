#!/usr/bin/env bash
# What bench/peers.ts needs beside scripts/setup.sh: the three peer tools it measures switchyard
# against, from Debian, installed only when missing (as root; their own services are kept from
# starting, the bench runs its own). Idempotent: with nothing to install it takes well under a second.
#
#   repmgr 5             postgresql-15-repmgr          (repmgr, repmgrd in the PostgreSQL 15 bin dir)
#   pg_auto_failover 2   postgresql-15-auto-failover, pg-auto-failover-cli   (pg_autoctl)
#   Patroni 3            patroni                       (patroni, patronictl)
#   etcd 3 (v3 API)      etcd-server                   (the one-member DCS of the Patroni pair)
#
# Prints one line per part; exits non-zero with a message naming the part that could not be had.
set -euo pipefail

PG_MAJOR=15
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.tools"
mkdir -p "$tools"
say() { printf 'setup-peers: %s\n' "$*"; }
die() { printf 'setup-peers: FAILED: %s\n' "$*" >&2; exit 1; }

pgbin="/usr/lib/postgresql/$PG_MAJOR/bin"
[ -x "$pgbin/postgres" ] || die "PostgreSQL $PG_MAJOR server binaries not found in $pgbin (run scripts/setup.sh first)"

find_bin() { # name, then candidate paths; prints the first executable one
  local name=$1 p
  shift
  for p in "$@" "$(command -v "$name" 2>/dev/null || true)"; do
    if [ -n "$p" ] && [ -x "$p" ]; then echo "$p"; return 0; fi
  done
  return 1
}

need_pkgs=()
find_bin repmgr "$pgbin/repmgr" >/dev/null && find_bin repmgrd "$pgbin/repmgrd" >/dev/null &&
  [ -f "/usr/lib/postgresql/$PG_MAJOR/lib/repmgr.so" ] || need_pkgs+=("postgresql-$PG_MAJOR-repmgr")
[ -f "/usr/lib/postgresql/$PG_MAJOR/lib/pgautofailover.so" ] || need_pkgs+=("postgresql-$PG_MAJOR-auto-failover")
find_bin pg_autoctl "$pgbin/pg_autoctl" >/dev/null || need_pkgs+=(pg-auto-failover-cli)
{ find_bin patroni /usr/bin/patroni >/dev/null && find_bin patronictl /usr/bin/patronictl >/dev/null; } || need_pkgs+=(patroni)
find_bin etcd /usr/bin/etcd >/dev/null || need_pkgs+=(etcd-server)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d keeps the packages' own services (etcd above all) from starting: the bench runs its own.
    had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ $had_policy = 1 ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
    ok=1
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null; } || ok=0
    [ $had_policy = 1 ] || rm -f /usr/sbin/policy-rc.d
    [ $ok = 1 ] || die "apt-get install ${need_pkgs[*]} failed"
  else
    die "missing ${need_pkgs[*]}: install them (Debian/Ubuntu: sudo apt-get install ${need_pkgs[*]}) and run again"
  fi
fi

repmgr=$(find_bin repmgr "$pgbin/repmgr") || die "repmgr not found after install"
repmgrd=$(find_bin repmgrd "$pgbin/repmgrd") || die "repmgrd not found after install"
pg_autoctl=$(find_bin pg_autoctl "$pgbin/pg_autoctl") || die "pg_autoctl not found after install"
patroni=$(find_bin patroni /usr/bin/patroni) || die "patroni not found after install"
patronictl=$(find_bin patronictl /usr/bin/patronictl) || die "patronictl not found after install"
etcd=$(find_bin etcd /usr/bin/etcd) || die "etcd not found after install"
etcdctl=$(find_bin etcdctl /usr/bin/etcdctl || true)

say "$("$repmgr" --version 2>&1 | head -n1); $("$pg_autoctl" version 2>&1 | head -n1)"
say "patroni $("$patroni" --version 2>&1 | awk '{print $NF}'); etcd $("$etcd" --version 2>&1 | sed -nE 's/^etcd Version: //p')"

cat >"$tools/peers.json.tmp" <<EOF
{
  "repmgr": "$repmgr",
  "repmgrd": "$repmgrd",
  "pgAutoctl": "$pg_autoctl",
  "patroni": "$patroni",
  "patronictl": "$patronictl",
  "etcd": "$etcd",
  "etcdctl": "$etcdctl",
  "ssh": "$(command -v ssh)"
}
EOF
mv "$tools/peers.json.tmp" "$tools/peers.json"
say "ready ($tools/peers.json)"
