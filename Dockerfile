# One image for every Strata process, running the compiled JavaScript of dist/; docker-compose.yaml picks the entry
# point per service with `command`:
#   docker run ... strata dist/cmd/api/main.js | dist/cmd/storage-node/main.js | dist/cmd/healer/main.js | dist/cmd/all-in-one/main.js
# Configuration is environment variables only (README.md, "Configuration").

# ---- build: native dependencies need a toolchain that the runtime image does not carry ----------------------------
FROM node:26-bookworm-slim AS build
# better-sqlite3 compiles SQLite when no prebuilt binary matches; @ronomon/reed-solomon always compiles (node-gyp).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# Everything in the lock file (the compiler is a development dependency); scripts/build.mjs is what `prepare` runs.
COPY scripts ./scripts
RUN npm ci --ignore-scripts && npm rebuild
COPY tsconfig.json tsconfig.build.json ./
COPY cmd ./cmd
COPY internal ./internal
RUN npm run build \
 && npm prune --omit=dev \
 && npm cache clean --force

# ---- runtime ----------------------------------------------------------------------------------------------------
FROM node:26-bookworm-slim
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
# `node` itself rather than `npm start`: one process, so SIGTERM from `docker stop` reaches the entry point directly
# and it shuts down cleanly (internal/cli/run-process.ts), with no npm wrapper in between.
ENTRYPOINT ["node"]
CMD ["dist/cmd/all-in-one/main.js"]
