#!/usr/bin/env bash
# The figures of BENCHMARKS.md for webhook_queue's store redis, side by
# side in one run, on loopback, bounded in count:
#
#   1. accept: 1 KiB deliveries queued through Caddy (queue paused) with
#      wrk -c 32, against the store's own accept and raw pipelined XADD
#      of the same bytes (go test -bench RedisAccept);
#   2. Redis memory per pending 1 KiB item (go test -bench
#      RedisMemoryPerItem), with Redis' default stream-node-max-bytes
#      and with 65536;
#   3. drain: a backlog of DRAIN_N items of 1 KiB delivered to a fast
#      backend by one Caddy server, then the same backlog by two.
#
#   ./scripts/bench-queue-redis.sh              # about 3 minutes
#   DRAIN_N=20000 ./scripts/bench-queue-redis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DRAIN_N=${DRAIN_N:-100000}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 2; }
command -v hey >/dev/null || { echo "hey is needed: apt-get install -y hey" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "redis-server is needed: apt-get install -y redis-server" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/caddy" ./cmd/caddy
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_admin() { for _ in $(seq 200); do curl -sf "http://localhost:$1/config/" >/dev/null && return 0; sleep 0.05; done; echo "caddy on admin $1 did not start" >&2; exit 1; }

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --maxmemory-policy noeviction --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done

be_port=$(free_port); be_admin=$(free_port)
cat >"$work/backend.caddyfile" <<EOF
{
	admin localhost:$be_admin
	http_port $be_port
	storage file_system $work/be-data
}
:$be_port {
	respond 200
}
EOF
"$work/caddy" run --config "$work/backend.caddyfile" >"$work/backend.log" 2>&1 &
pids+=($!)
wait_admin "$be_admin"

# server <n>: a Caddy whose /q queues into the shared queue "bench".
server() {
	local n=$1 port=$2 admin=$3
	mkdir -p "$work/s$n"
	cat >"$work/s$n/Caddyfile" <<EOF
{
	admin localhost:$admin
	http_port $port
	storage file_system $work/s$n/data
	webhook {
		redis {
			address redis://127.0.0.1:$rport/0
		}
	}
}
:$port {
	route /q {
		webhook_queue bench {
			store redis
			concurrency 16
			deliver {
				reverse_proxy 127.0.0.1:$be_port
			}
		}
	}
}
EOF
	HOME="$work/s$n" "$work/caddy" run --config "$work/s$n/Caddyfile" >"$work/s$n/caddy.log" 2>&1 &
	pids+=($!)
	wait_admin "$admin"
}
p1=$(free_port); a1=$(free_port); p2=$(free_port); a2=$(free_port)
server 1 "$p1" "$a1"
head -c 1024 /dev/zero | tr '\0' 'a' >"$work/body"
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$work/body", "rb"); wrk.body = f:read("*a"); f:close()
LUA

echo "== 1. accept (queue paused), 1 KiB, wrk -t 2 -c 32 -d 5s"
curl -sf -X POST "http://localhost:$a1/webhook/queues/bench/pause" >/dev/null
out=$(wrk -t 2 -c 32 -d 5s --latency -s "$work/post.lua" "http://127.0.0.1:$p1/q")
echo "through Caddy: $(echo "$out" | awk '/Requests\/sec/ {print $2}') req/s, p99 $(echo "$out" | awk '/ 99%/ {print $2}') ($(echo "$out" | grep -c 'Non-2xx' || true) lines of non-2xx)"
go test ./queue -run '^$' -bench RedisAccept -benchtime 20000x -cpu 2 | awk '/^Benchmark/ {printf "%s: %.0f items/s\n", $1, 1e9/$3}'

echo "== 2. Redis memory per pending 1 KiB item"
go test ./queue -run '^$' -bench RedisMemoryPerItem -benchtime 20000x | awk '/^Benchmark/ {print "default stream-node-max-bytes, " $1 ": " $5 " bytes/item"}'
NODE_MAX_BYTES=65536 go test ./queue -run '^$' -bench RedisMemoryPerItem -benchtime 20000x | awk '/^Benchmark/ {print "stream-node-max-bytes 65536, " $1 ": " $5 " bytes/item"}'

drain() {
	local label=$1 admin=$2
	start=$(date +%s.%N)
	curl -sf -X POST "http://localhost:$admin/webhook/queues/bench/resume" >/dev/null
	until curl -sf "http://localhost:$admin/webhook/queues/bench" | grep -q '"pending":0,"in_flight":0'; do sleep 0.1; done
	end=$(date +%s.%N)
	echo "$label: $(python3 -c "print(round($DRAIN_N/($end-$start)))") deliveries/s"
	curl -sf -X POST "http://localhost:$admin/webhook/queues/bench/pause" >/dev/null
}
echo "== 3. drain $DRAIN_N items of 1 KiB (concurrency 16 for the fleet)"
# Empty the accept test's items first.
curl -sf -X POST "http://localhost:$a1/webhook/queues/bench/resume" >/dev/null
until curl -sf "http://localhost:$a1/webhook/queues/bench" | grep -q '"pending":0,"in_flight":0'; do sleep 0.5; done
curl -sf -X POST "http://localhost:$a1/webhook/queues/bench/pause" >/dev/null
hey -n "$DRAIN_N" -c 32 -m POST -T application/json -D "$work/body" "http://127.0.0.1:$p1/q" >/dev/null
drain "one server" "$a1"
server 2 "$p2" "$a2"
hey -n "$DRAIN_N" -c 32 -m POST -T application/json -D "$work/body" "http://127.0.0.1:$p1/q" >/dev/null
drain "two servers" "$a1"
