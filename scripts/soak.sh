#!/usr/bin/env bash
# Soak test: 10 minutes of mixed webhook traffic (new deliveries of 1 KiB
# to 1 MiB, copies, forgeries, requests over a rate limit) against two
# Caddy servers built from this repository, one on Redis and one in
# memory. Every 10 s it samples each process's RSS, goroutines and open
# file descriptors, and Redis' used_memory; it fails when any of them
# keeps growing after the warm-up, or when a request is answered other
# than expected. Not part of CI (it takes DURATION); RELIABILITY.md has
# a run.
#
#   ./scripts/soak.sh                  # 10 minutes
#   DURATION=2m WARMUP=40s ./scripts/soak.sh
#
# Output: the table on standard output; samples.csv, soak.png and the
# Caddy logs in $OUT (default: a temporary directory, printed).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
	echo "== installing redis-server"
	if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
	$sudo apt-get update -qq && $sudo apt-get install -y -qq redis-server >/dev/null
fi
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
echo "== building caddy"
go build -o "$out/caddy" ./cmd/caddy
echo "== soak for ${DURATION:-10m}; output in $out"
cd scripts/soak
go run . -caddy "$out/caddy" -duration "${DURATION:-10m}" -warmup "${WARMUP:-3m}" -rate "${RATE:-150}" -out "$out"
