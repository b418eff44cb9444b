# syntax=docker/dockerfile:1
# One image for every Tidemark service and the CLI; compose picks the entry point:
#   node services/<name>/dist/main.js      (scheduler, pg-agent, qdrant-agent, files-agent, storage, verifier, alerter)
#   node cli/dist/main.js                  (the tidemark CLI)
# Build and runtime stages share the same base so the zstd-napi native binding built here loads there.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
# zstd-napi compiles its binding with node-gyp when no prebuilt matches the platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app

# Manifests first: the npm ci layer is reused until a dependency changes.
COPY package.json package-lock.json tsconfig.base.json tsconfig.json ./
# Every workspace of package.json (scripts/check-dockerfile.mjs checks): npm ci installs each from its manifest.
COPY libs/contracts/package.json libs/contracts/
COPY libs/pipeline/package.json libs/pipeline/
COPY libs/storage/package.json libs/storage/
COPY libs/runtime/package.json libs/runtime/
COPY libs/pg/package.json libs/pg/
COPY libs/qdrant/package.json libs/qdrant/
COPY libs/agent/package.json libs/agent/
COPY libs/chunks/package.json libs/chunks/
COPY libs/files/package.json libs/files/
COPY libs/config/package.json libs/config/
COPY libs/testkit/package.json libs/testkit/
COPY services/scheduler/package.json services/scheduler/
COPY services/pg-agent/package.json services/pg-agent/
COPY services/qdrant-agent/package.json services/qdrant-agent/
COPY services/files-agent/package.json services/files-agent/
COPY services/storage/package.json services/storage/
COPY services/verifier/package.json services/verifier/
COPY services/alerter/package.json services/alerter/
COPY cli/package.json cli/
RUN npm ci --no-audit --no-fund

COPY libs libs
COPY services services
COPY cli cli
# Then only what runs stays. libs/testkit (the test servers: testcontainers, s3rver) is a workspace,
# and npm keeps every workspace and its dependencies, so it leaves the workspace list first.
# --legacy-peer-deps: @qdrant/js-client-rest names typescript as a peer, which nothing needs at run
# time (the only other peer, pg-pool's pg, is a direct dependency anyway).
RUN npx tsc --build \
 && node -e "const fs = require('fs'), p = JSON.parse(fs.readFileSync('package.json')); p.workspaces = p.workspaces.filter((w) => w !== 'libs/testkit'); fs.writeFileSync('package.json', JSON.stringify(p, null, 2) + '\n')" \
 && rm -rf libs/testkit \
 && npm prune --omit=dev --legacy-peer-deps --no-audit --no-fund \
 && find libs services cli -mindepth 2 -maxdepth 2 \( -name src -o -name test \) -type d -exec rm -rf {} + \
 && find libs services cli -name '*.tsbuildinfo' -delete

FROM ${NODE_IMAGE} AS runtime
# PostgreSQL 15 from the PGDG repository: the client tools (pg_dump, pg_restore, pg_basebackup,
# pg_receivewal, pg_verifybackup) and the server binaries with pgvector, which the verifier starts
# base backups with and pg-agent runs point-in-time restores on. No cluster is created in the image.
# tini reaps the tools' children and forwards SIGTERM for a clean shutdown.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-common ca-certificates tini \
 && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
 && mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/tidemark.conf \
 && apt-get install -y --no-install-recommends postgresql-15 postgresql-15-pgvector \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/tidemark/pg /var/lib/tidemark/key && chown node:node /var/lib/tidemark/pg /var/lib/tidemark/key
ENV NODE_ENV=production \
    TIDEMARK_PG_BIN=/usr/lib/postgresql/15/bin \
    TIDEMARK_CONFIG=/etc/tidemark/tidemark.yaml \
    TIDEMARK_HEALTH_HOST=0.0.0.0 \
    TIDEMARK_HEALTH_PORT=8080
WORKDIR /app
# The workspace links in node_modules/@tidemark point at ../../libs/… and ../../services/…, so the
# folders keep their places.
# No lock file: the runtime tree is node_modules as pruned (npm ls --omit=dev checks it).
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/libs libs
COPY --from=build /app/services services
COPY --from=build /app/cli cli
USER node
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "cli/dist/main.js", "--help"]
