#!/bin/sh
# Prepares deploy/secrets/ for docker-compose.yml. Run it from anywhere, as root (or with sudo) so
# that it can give each file to the uid that reads it; run again at any time: existing files are
# kept, only missing ones are made.
#
#   temporal_db_password               generated (random) when missing
#   switchyard_ssh_key                 copied from $SWITCHYARD_SSH_KEY_FILE (a private key file)
#   switchyard_pg_password             taken from $SWITCHYARD_PG_PASSWORD
#   switchyard_pg_replication_password taken from $SWITCHYARD_PG_REPLICATION_PASSWORD
#   switchyard_webhook_url             taken from $SWITCHYARD_WEBHOOK_URL, else left empty
#   switchyard_aws_credentials         copied from $SWITCHYARD_AWS_CREDENTIALS_FILE, else left empty
#                                      (an empty file lets the AWS SDK fall back to the host's role)
#   switchyard_console_key             the console's Ed25519 signing key, generated (openssl) when
#                                      missing; its public half is printed for console.publicKey
#   switchyard_codec_key               the payload codec's AES-256 key (temporal.codec.keys), 64 hex
#                                      digits from /dev/urandom, generated when missing. Keep a copy
#                                      elsewhere: without it nothing already written can be read
#
# Compose mounts these files as they are (bind mounts): the owner and mode set here are what the
# containers see. Temporal's images run as uid 1000, the worker as uid 10001.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)/secrets
mkdir -p "$dir"
chmod 700 "$dir"
umask 077
missing=""

put() { # put NAME VALUE: write VALUE to the file NAME unless it exists
  [ -e "$dir/$1" ] && return 0
  printf '%s' "$2" >"$dir/$1"
  echo "init-secrets: wrote $1"
}

copy() { # copy NAME SOURCE
  [ -e "$dir/$1" ] && return 0
  cp "$2" "$dir/$1"
  echo "init-secrets: copied $2 to $1"
}

if [ ! -e "$dir/temporal_db_password" ]; then
  put temporal_db_password "$(head -c 32 /dev/urandom | base64 | tr -d '\n/+=' | cut -c1-40)"
fi

if [ ! -e "$dir/switchyard_ssh_key" ]; then
  if [ -n "${SWITCHYARD_SSH_KEY_FILE:-}" ]; then copy switchyard_ssh_key "$SWITCHYARD_SSH_KEY_FILE"
  else missing="$missing switchyard_ssh_key(SWITCHYARD_SSH_KEY_FILE)"; fi
fi
if [ ! -e "$dir/switchyard_pg_password" ]; then
  if [ -n "${SWITCHYARD_PG_PASSWORD:-}" ]; then put switchyard_pg_password "$SWITCHYARD_PG_PASSWORD"
  else missing="$missing switchyard_pg_password(SWITCHYARD_PG_PASSWORD)"; fi
fi
if [ ! -e "$dir/switchyard_pg_replication_password" ]; then
  if [ -n "${SWITCHYARD_PG_REPLICATION_PASSWORD:-}" ]; then put switchyard_pg_replication_password "$SWITCHYARD_PG_REPLICATION_PASSWORD"
  else missing="$missing switchyard_pg_replication_password(SWITCHYARD_PG_REPLICATION_PASSWORD)"; fi
fi
put switchyard_webhook_url "${SWITCHYARD_WEBHOOK_URL:-}"
if [ ! -e "$dir/switchyard_aws_credentials" ] && [ -n "${SWITCHYARD_AWS_CREDENTIALS_FILE:-}" ]; then
  copy switchyard_aws_credentials "$SWITCHYARD_AWS_CREDENTIALS_FILE"
fi
put switchyard_aws_credentials ""
if [ ! -e "$dir/switchyard_console_key" ]; then
  if command -v openssl >/dev/null; then
    openssl genpkey -algorithm ed25519 -out "$dir/switchyard_console_key"
    echo "init-secrets: wrote switchyard_console_key; put its public key in the topology as console.publicKey:"
    echo "  publicKey: $(openssl pkey -in "$dir/switchyard_console_key" -pubout -outform DER | tail -c 32 | od -An -tx1 | tr -d ' \n')"
  else missing="$missing switchyard_console_key(openssl, or: npx switchyard operator keygen --out $dir/switchyard_console_key)"; fi
fi

if [ ! -e "$dir/switchyard_codec_key" ]; then
  put switchyard_codec_key "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
fi

if [ -n "$missing" ]; then
  echo "init-secrets: still missing (write the file in $dir, or set the variable and run again):" >&2
  for m in $missing; do echo "  $m" >&2; done
fi

# Owners and modes: read-only, for the one uid that reads each file.
if [ "$(id -u)" = 0 ]; then
  for f in "$dir"/temporal_*; do [ -e "$f" ] && chown 1000:1000 "$f" && chmod 400 "$f"; done
  for f in "$dir"/switchyard_*; do [ -e "$f" ] && chown 10001:10001 "$f" && chmod 400 "$f"; done
  echo "init-secrets: owners set (temporal_* uid 1000, switchyard_* uid 10001), mode 0400"
else
  echo "init-secrets: not root, so owners are unchanged; before 'docker compose up' run:" >&2
  echo "  sudo chown 1000:1000 $dir/temporal_* && sudo chown 10001:10001 $dir/switchyard_* && sudo chmod 400 $dir/*_*" >&2
fi
[ -z "$missing" ]
