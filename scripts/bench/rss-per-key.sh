#!/usr/bin/env bash
# Measures how much a running Caddy's resident memory grows per distinct
# rate-limit key: the same wrk load is sent twice to fresh servers, once
# with 200,000 distinct keys and once with a single key, and the
# difference in RSS growth is divided by the number of keys. Caddy runs
# with GOGC=25 (override with GOGC=…) so that garbage headroom, which
# differs little between the runs, does not hide the live growth.
#
#   ./scripts/bench/rss-per-key.sh        (KEYS=200000 DURATION=20s)
set -euo pipefail
cd "$(dirname "$0")/../.."
KEYS=${KEYS:-200000}
DURATION=${DURATION:-20s}
THREADS=2
sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
command -v wrk >/dev/null || { $sudo apt-get update -qq && $sudo apt-get install -y -qq wrk >/dev/null; }

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/caddy" ./cmd/caddy
cat > "$work/Caddyfile" <<CADDY
{
	admin localhost:2999
	auto_https off
	log {
		level ERROR
	}
}
http://127.0.0.1:9080 {
	route /limited {
		webhook_rate_limit {
			key {http.request.header.X-Client}
			rate 100/1d   # slow, so that no key drains during the run
		}
		respond "ok"
	}
}
CADDY

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
heap_kb() { curl -s localhost:2999/metrics | awk '/^go_memstats_heap_inuse_bytes/ {printf "%d", $2/1024}'; }

run() { # run <one_key 0|1>: prints "requests rss_growth_kb"
	GOGC=${GOGC:-25} "$work/caddy" run --config "$work/Caddyfile" >"$work/caddy.log" 2>&1 &
	local pid=$!
	for _ in $(seq 50); do curl -sf -o /dev/null -X POST http://127.0.0.1:9080/limited && break; sleep 0.1; done
	# Warm up with the single key so both runs start from the same state.
	ONE_KEY=1 KEYS=$KEYS THREADS=$THREADS wrk -t$THREADS -c16 -d2s -s scripts/bench/rss-per-key.lua http://127.0.0.1:9080 >/dev/null
	local before; before=$(rss_kb $pid)
	local heap_before; heap_before=$(heap_kb)
	local out; out=$(ONE_KEY=$1 KEYS=$KEYS THREADS=$THREADS wrk -t$THREADS -c16 -d"$DURATION" -s scripts/bench/rss-per-key.lua http://127.0.0.1:9080)
	local after; after=$(rss_kb $pid)
	local heap_after; heap_after=$(heap_kb)
	kill $pid; wait $pid 2>/dev/null || true
	local reqs; reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	echo "one_key=$1: RSS ${before} -> ${after} KiB; Go heap in use ${heap_before} -> ${heap_after} KiB" >&2
	echo "$reqs $((after - before))"
}

read -r reqs_many grow_many < <(run 0)
read -r reqs_one grow_one < <(run 1)
echo "distinct keys:          $KEYS (requests sent: $reqs_many)"
echo "RSS growth, $KEYS keys: ${grow_many} KiB"
echo "RSS growth, 1 key:      ${grow_one} KiB (requests sent: $reqs_one)"
if [ "$reqs_many" -lt "$KEYS" ]; then
	echo "warning: fewer requests than keys; raise DURATION" >&2
fi
echo "bytes per key:          $(( (grow_many - grow_one) * 1024 / KEYS ))"
