#!/bin/sh
# Entrypoint wrapper for the temporalio/server container (docker-compose.yml, service "temporal").
#
# The server reads its database password only from the environment variable POSTGRES_PWD. This
# wrapper fills that variable from the file named by POSTGRES_PWD_FILE (a compose secret under
# /run/secrets) so the password never has to be written into docker-compose.yml or an .env file,
# then hands over to the image's own entrypoint.
set -eu

: "${POSTGRES_PWD_FILE:?set POSTGRES_PWD_FILE to the file holding the database password}"
if [ ! -r "$POSTGRES_PWD_FILE" ]; then
  echo "start-server: cannot read $POSTGRES_PWD_FILE (is the secret file readable by uid $(id -u)?)" >&2
  exit 1
fi
POSTGRES_PWD=$(cat "$POSTGRES_PWD_FILE")
export POSTGRES_PWD
unset POSTGRES_PWD_FILE

# Listening on every interface needs an address to advertise to the other Temporal services; the
# image's entrypoint.sh works it out the same way, older and newer images alike.
if [ "${BIND_ON_IP:-}" = "0.0.0.0" ] && [ -z "${TEMPORAL_BROADCAST_ADDRESS:-}" ]; then
  TEMPORAL_BROADCAST_ADDRESS=$(getent hosts "$(hostname)" | awk 'NR == 1 { print $1 }')
  export TEMPORAL_BROADCAST_ADDRESS
fi

if [ -x /etc/temporal/entrypoint.sh ]; then
  exec /etc/temporal/entrypoint.sh "$@"
fi
exec temporal-server start "$@"
