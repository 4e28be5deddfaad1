# The switchyard worker: polls the `switchyard` task queue and runs the runbooks' activities
# (PostgreSQL, SSH, EC2). Built by docker-compose.yml; also usable on its own:
#
#   docker build -t switchyard-worker .
#   docker run --rm -e TEMPORAL_ADDRESS=temporal.example:7233 \
#     -v "$PWD/switchyard.yaml:/etc/switchyard/switchyard.yaml:ro" switchyard-worker
#
# Both stages use the same Node image, pinned by its full version (bump both together).
# There is no build step: tsx (a runtime dependency) compiles the TypeScript as it loads.

# --- stage 1: production npm dependencies only ------------------------------------------------
FROM node:20.20.2-bookworm-slim AS deps
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# `npm ci` refuses this lock file: it was made on linux-x64 and lacks other platforms' optional
# packages (@swc/core-darwin-*, -win32-* ...), so `npm ci --omit=dev` fails with "Missing: ... from
# lock file". `npm install` still takes every version from the lock file and only resolves the
# missing optional package for the platform being built (linux-x64 or linux-arm64).
RUN npm install --omit=dev --no-audit --no-fund --loglevel=error \
 && npm cache clean --force

# --- stage 2: runtime ---------------------------------------------------------------------------
FROM node:20.20.2-bookworm-slim AS runtime

# Tools the runbooks' activities run: psql / pg_basebackup (PostgreSQL 15, Debian bookworm's own
# major version, matching the clusters this project manages) and ssh / scp.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates \
      openssh-client \
      postgresql-client-15 \
 && rm -rf /var/lib/apt/lists/*

# An unprivileged user with a fixed uid, so secret files on the host can be given to it
# (compose's file secrets are bind mounts: the host file's owner and mode are what the container
# sees; see deploy/README.md). /var/lib/switchyard is for local backups when backup.root is there.
RUN groupadd --system --gid 10001 switchyard \
 && useradd --system --uid 10001 --gid switchyard --home-dir /home/switchyard --create-home \
      --shell /usr/sbin/nologin switchyard \
 && mkdir -p /etc/switchyard /var/lib/switchyard \
 && chown switchyard:switchyard /var/lib/switchyard

WORKDIR /app
ENV NODE_ENV=production \
    SWITCHYARD_CONFIG=/etc/switchyard/switchyard.yaml

COPY --from=deps /app/node_modules ./node_modules
# The sources, as .dockerignore leaves them (no tests, no local tools, no secrets, no topology).
# Owned by root: the worker can read its code but not change it.
COPY . .
# The workflow bundle, built once here into node_modules/.cache (src/workflow-bundle.ts): the
# worker, which cannot write there, starts without running webpack.
RUN node scripts/build-workflow-bundle.js

USER switchyard

# Healthy means this container's worker is polling the task queue (workflow and activity pollers
# whose identity names this host, seen within the last three minutes), not only that node runs.
HEALTHCHECK --interval=30s --timeout=15s --start-period=120s --retries=3 \
  CMD ["node", "deploy/worker-healthcheck.js"]

ENTRYPOINT ["node", "bin/switchyard.js", "worker"]
