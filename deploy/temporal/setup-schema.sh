#!/bin/sh
# One-shot job (docker-compose.yml, service "temporal-schema", image temporalio/admin-tools):
# creates Temporal's two PostgreSQL databases and brings their schemas to the version the
# admin-tools image ships, which must be the server's version (both images are pinned together).
#
# Safe to run on every `docker compose up`: create-database ignores a database that exists,
# setup-schema never lowers a recorded version, and update-schema applies only what is missing.
set -eu

: "${POSTGRES_SEEDS:?set POSTGRES_SEEDS to the PostgreSQL host}"
: "${POSTGRES_USER:?set POSTGRES_USER}"
: "${SQL_PASSWORD_FILE:?set SQL_PASSWORD_FILE to the file holding the database password}"
DB_PORT=${DB_PORT:-5432}
SCHEMA_DIR=${SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}

if [ ! -r "$SQL_PASSWORD_FILE" ]; then
  echo "setup-schema: cannot read $SQL_PASSWORD_FILE (is the secret file readable by uid $(id -u)?)" >&2
  exit 1
fi
# temporal-sql-tool reads the password from SQL_PASSWORD, so it is never on a command line.
SQL_PASSWORD=$(cat "$SQL_PASSWORD_FILE")
export SQL_PASSWORD

sql_tool() {
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"
}

echo "setup-schema: waiting for PostgreSQL at $POSTGRES_SEEDS:$DB_PORT"
tries=0
until nc -z -w 2 "$POSTGRES_SEEDS" "$DB_PORT"; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "setup-schema: PostgreSQL at $POSTGRES_SEEDS:$DB_PORT did not answer in 120s" >&2
    exit 1
  fi
  sleep 2
done

for pair in temporal:temporal temporal_visibility:visibility; do
  db=${pair%%:*}
  dir=${pair#*:}
  echo "setup-schema: database $db"
  sql_tool --db "$db" create
  sql_tool --db "$db" setup-schema -v 0.0
  sql_tool --db "$db" update-schema -d "$SCHEMA_DIR/$dir/versioned"
done
echo "setup-schema: done"
