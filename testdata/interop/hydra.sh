#!/usr/bin/env bash
# Interop check of the voipnow_pce gateway against Ory Hydra v2.3.0 (run by
# hand, not in .ci/run: the first run builds Hydra, a few minutes).
#
#   bash testdata/interop/hydra.sh
#
# It builds Hydra (from the module in testdata/interop/hydra, with the tags
# sqlite,sqlite_omit_load_extension), cmd/caddy and cmd/pce-sim into
# .cache/interop/, then runs the Go program in testdata/interop/hydra, which
# starts Hydra (DSN=memory), the simulated backend and the gateway on free
# loopback ports, runs the checks, prints the results table and stops every
# process it started. Exit status 0 when every check passed.
#
# Environment: HYDRA_INTEROP_WORK (a directory for the configs and logs;
# default a new temp dir, kept), HYDRA_INTEROP_OUT (also write the table
# there), HYDRA_INTEROP_SRC (build cmd/caddy and cmd/pce-sim from this
# checkout instead of this one, e.g. `git archive HEAD | tar -x -C DIR`).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
mod="$repo/testdata/interop/hydra"
bin="$repo/.cache/interop"
mkdir -p "$bin"
work="${HYDRA_INTEROP_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/pce-hydra-interop.XXXXXX")}"
mkdir -p "$work"

hydra_version="$(cd "$mod" && go list -m -f '{{.Version}}' github.com/ory/hydra/v2)"
echo "== building hydra $hydra_version (first time: minutes)"
start=$SECONDS
(cd "$mod" && go build -tags sqlite,sqlite_omit_load_extension \
	-ldflags "-X github.com/ory/hydra/v2/driver/config.Version=$hydra_version" \
	-o "$bin/hydra" github.com/ory/hydra/v2)
echo "== building cmd/caddy and cmd/pce-sim from ${HYDRA_INTEROP_SRC:-$repo}"
src="${HYDRA_INTEROP_SRC:-$repo}"
(cd "$src" && go build -o "$bin/caddy" ./cmd/caddy && go build -o "$bin/pce-sim" ./cmd/pce-sim)
(cd "$mod" && go build -o "$bin/hydra-interop" .)
echo "== built in $((SECONDS - start))s; configs and logs in $work"

pid=
cleanup() {
	# The program stops its own processes; this is for an interrupted run.
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

args=(-hydra "$bin/hydra" -caddy "$bin/caddy" -pcesim "$bin/pce-sim" -work "$work")
if [ -n "${HYDRA_INTEROP_OUT:-}" ]; then args+=(-out "$HYDRA_INTEROP_OUT"); fi
"$bin/hydra-interop" "${args[@]}" &
pid=$!
set +e
wait "$pid"
rc=$?
set -e
pid=
echo "== total $((SECONDS - start))s, exit $rc"
exit "$rc"
