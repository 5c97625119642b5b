#!/usr/bin/env bash
# README's first command: the local stack on a fresh machine. It builds and
# runs the simulated legacy backend and identity provider (cmd/pce-sim:
# backend on 127.0.0.1:9080, identity provider on 127.0.0.1:9096) and the
# gateway (cmd/caddy with Caddyfile.example, as is, on :8080; admin API on
# localhost:2019). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache/bin
go build -o .cache/bin/caddy ./cmd/caddy
go build -o .cache/bin/pce-sim ./cmd/pce-sim
# The simulator's gateway client is gateway:gateway-secret.
export PCE_CLIENT_SECRET="${PCE_CLIENT_SECRET:-gateway-secret}"
.cache/bin/pce-sim &
sim=$!
trap 'kill "$sim" 2>/dev/null || true' EXIT
trap 'exit 0' INT TERM
.cache/bin/caddy run --config Caddyfile.example --adapter caddyfile &
caddy=$!
trap 'kill "$caddy" "$sim" 2>/dev/null || true' EXIT
wait "$caddy"
