#!/bin/sh
# One-shot job (docker-compose.yml, service "temporal-setup", image temporalio/admin-tools):
# waits until the Temporal server answers, creates switchyard's namespace when it is missing and
# registers the search attributes switchyard's workflows upsert, so that the Temporal UI and
# `temporal workflow list --query 'SwitchyardCluster="main"'` can show where every run is.
#
# Safe to run on every `docker compose up`: existing namespaces and attributes are left alone.
set -eu

TEMPORAL_ADDRESS=${TEMPORAL_ADDRESS:-temporal:7233}
NAMESPACE=${TEMPORAL_NAMESPACE:-default}
RETENTION=${SWITCHYARD_RETENTION:-720h}
SEARCH_ATTRIBUTES=${SWITCHYARD_SEARCH_ATTRIBUTES:-SwitchyardCluster SwitchyardOperation SwitchyardStep SwitchyardWaitingFor SwitchyardVerdict}

# Use the server's IPv4 address: the CLI may otherwise try an address Docker's network does not serve.
host=${TEMPORAL_ADDRESS%:*}
port=${TEMPORAL_ADDRESS##*:}
ip=$(getent ahosts "$host" 2>/dev/null | awk '/STREAM/ && $1 ~ /^[0-9.]+$/ { print $1; exit }' || true)
address=${ip:-$host}:$port
echo "setup-namespace: Temporal at $TEMPORAL_ADDRESS ($address), namespace $NAMESPACE"

tries=0
until temporal operator cluster health --address "$address" >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "setup-namespace: Temporal at $address was not healthy within 120s" >&2
    temporal operator cluster health --address "$address" >&2 || true
    exit 1
  fi
  sleep 2
done

if temporal operator namespace describe --address "$address" --namespace "$NAMESPACE" >/dev/null 2>&1; then
  echo "setup-namespace: namespace $NAMESPACE exists"
else
  echo "setup-namespace: creating namespace $NAMESPACE (retention $RETENTION)"
  temporal operator namespace create --address "$address" --namespace "$NAMESPACE" --retention "$RETENTION"
fi

# A namespace just created can take a moment to be visible to the search-attribute calls.
tries=0
until existing=$(temporal operator search-attribute list --address "$address" --namespace "$NAMESPACE" 2>/dev/null); do
  tries=$((tries + 1))
  if [ "$tries" -ge 30 ]; then
    echo "setup-namespace: cannot list search attributes of namespace $NAMESPACE" >&2
    exit 1
  fi
  sleep 2
done

for name in $SEARCH_ATTRIBUTES; do
  if printf '%s\n' "$existing" | awk -v n="$name" '$1 == n { found = 1 } END { exit !found }'; then
    echo "setup-namespace: search attribute $name exists"
  else
    echo "setup-namespace: creating search attribute $name (Keyword)"
    temporal operator search-attribute create --address "$address" --namespace "$NAMESPACE" \
      --name "$name" --type Keyword
  fi
done

# Check the outcome, not only the exit codes: every attribute must now be listed as a Keyword.
existing=$(temporal operator search-attribute list --address "$address" --namespace "$NAMESPACE")
for name in $SEARCH_ATTRIBUTES; do
  if ! printf '%s\n' "$existing" | awk -v n="$name" '$1 == n && toupper($2) ~ /(^|_)KEYWORD$/ { found = 1 } END { exit !found }'; then
    echo "setup-namespace: search attribute $name is not registered as Keyword:" >&2
    printf '%s\n' "$existing" >&2
    exit 1
  fi
done
echo "setup-namespace: done"
