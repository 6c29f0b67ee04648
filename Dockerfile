# One image for every Strata process; docker-compose.yaml picks the entry point per service with `command`:
#   docker run ... strata cmd/api/main.ts | cmd/storage-node/main.ts | cmd/healer/main.ts | cmd/all-in-one/main.ts
# Configuration is environment variables only (README.md, "Configuration").

# ---- build: native dependencies need a toolchain that the runtime image does not carry ----------------------------
FROM node:20-bookworm-slim AS build
# better-sqlite3 compiles SQLite when no prebuilt binary matches; @ronomon/reed-solomon always compiles (node-gyp).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# Exactly the lock file, without test tools (tsx, which runs the TypeScript sources, is a runtime dependency).
RUN npm ci --omit=dev && npm cache clean --force
COPY tsconfig.json ./
COPY cmd ./cmd
COPY internal ./internal

# ---- runtime ----------------------------------------------------------------------------------------------------
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    STRATA_HOST=0.0.0.0 \
    STRATA_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app /app
# /data belongs to the unprivileged user; a named volume mounted there starts with this ownership. No VOLUME line:
# gateways and healers keep nothing there, and storage nodes get named volumes from docker-compose.yaml.
RUN mkdir -p /data && chown node:node /data
USER node
# 8000: gateway (cmd/api, all-in-one); storage nodes listen on their STRATA_PORT.
EXPOSE 8000
# `node --import tsx` rather than `npx tsx`: one process, so SIGTERM from `docker stop` reaches the entry point
# directly and it shuts down cleanly (internal/cli/run-process.ts), with no npm or tsx wrapper in between.
ENTRYPOINT ["node", "--import", "tsx"]
CMD ["cmd/all-in-one/main.ts"]
