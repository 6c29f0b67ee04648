#!/bin/sh
# Runs `node "$@"` on the Node that Strata runs on (scripts/node-runtime.mjs): this machine's own when it is a
# supported LTS line, else the newest line, installed from the npm registry by `npm install`. exec: no shell or
# extra process stays between a signal and the program.
set -e
runtime=$(node "$(dirname "$0")/node-runtime.mjs" --print)
exec "$runtime" "$@"
