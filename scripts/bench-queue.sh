#!/usr/bin/env bash
# The webhook_queue figures of BENCHMARKS.md, side by side in one run, on
# loopback only, bounded in count:
#
#   1. accept: 1 KiB and 64 KiB deliveries stored through Caddy (fsync
#      before the answer; the queue paused, so delivery takes no CPU)
#      with hey -c 32 and wrk -c 32, against the store's own batched
#      write of the same bytes by 32 writers (BenchmarkLocalStoreAdd);
#      p99 from each client;
#   2. drain: a 100,000-item backlog of 1 KiB delivered to a fast backend
#      (Caddy's respond) at concurrency 4, against plain reverse_proxy
#      to the same backend at the same concurrency (hey -c 4);
#   3. a 1,000,000-item backlog of 1 KiB: Caddy's start-up time (until
#      its admin API lists the queue) and resident memory;
#   4. throttle: a 2,000-item backlog behind rate 10/1s; the most
#      attempts the backend saw in any one second (its access log).
#
#   ./scripts/bench-queue.sh            # everything (about 8 minutes, ~2 GB of disk in /tmp)
#   ACCEPT_N=5000 DRAIN_N=20000 BIG_N=100000 THROTTLE_N=300 ./scripts/bench-queue.sh   # smaller
#   ACCEPT_ONLY=1 ./scripts/bench-queue.sh   # section 1 alone
set -euo pipefail
cd "$(dirname "$0")/.."
ACCEPT_N=${ACCEPT_N:-20000}
DRAIN_N=${DRAIN_N:-100000}
BIG_N=${BIG_N:-1000000}
THROTTLE_N=${THROTTLE_N:-2000}
command -v hey >/dev/null || { echo "hey is needed: apt-get install -y hey" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
KEEP_LOGS=${KEEP_LOGS:-}
go build -o "$work/caddy" ./cmd/caddy
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_admin() { for _ in $(seq 200); do curl -sf "http://localhost:$1/config/" >/dev/null && return 0; sleep 0.05; done; echo "caddy on admin $1 did not start:" >&2; tail -5 "$work"/*.log >&2; exit 1; }

# The backend: a Caddy answering 200 at once.
be_port=$(free_port); be_admin=$(free_port)
cat >"$work/backend.caddyfile" <<EOF
{
	admin localhost:$be_admin
	http_port $be_port
	storage file_system $work/be-data
}
:$be_port {
	log {
		output file $work/backend-access.log
		format json
	}
	respond 200
}
EOF
"$work/caddy" run --adapter caddyfile --config "$work/backend.caddyfile" >"$work/backend.log" 2>&1 &
pids+=($!)
wait_admin "$be_admin"

port=$(free_port); admin=$(free_port)
cat >"$work/Caddyfile" <<EOF
{
	admin localhost:$admin
	http_port $port
	storage file_system $work/data
}
:$port {
	route /q {
		webhook_queue bench {
			path $work/queue
			concurrency 4
			deliver {
				reverse_proxy 127.0.0.1:$be_port
			}
		}
	}
	route /proxy {
		reverse_proxy 127.0.0.1:$be_port
	}
	route /slow {
		webhook_queue slow {
			path $work/queue
			rate 10/1s
			deliver {
				reverse_proxy 127.0.0.1:$be_port
			}
		}
	}
}
EOF
"$work/caddy" run --config "$work/Caddyfile" >"$work/caddy.log" 2>&1 &
caddy_pid=$!
pids+=($caddy_pid)
wait_admin "$admin"

hey_rate() { awk '/Requests\/sec/ {print $2}'; }
hey_p99() { awk '/ 99% in/ {print $3*1000 " ms"}'; }

echo "== 1. accept (queue paused), hey -c 32 -n $ACCEPT_N (64 KiB: a quarter of that)"
curl -sf -X POST "http://localhost:$admin/webhook/queues/bench/pause" >/dev/null
for size in 1024 65536; do
	head -c "$size" /dev/zero | tr '\0' 'a' >"$work/body"
	n=$ACCEPT_N
	[ "$size" -gt 1024 ] && n=$((ACCEPT_N / 4))
	out=$(hey -n "$n" -c 32 -m POST -T application/json -D "$work/body" "http://127.0.0.1:$port/q")
	codes=$(echo "$out" | awk '/^ *\[[0-9]+\][[:space:]]+[0-9]+ responses/ {printf "%s ", $1 " " $2}')
	echo "through Caddy (hey, $n requests), $((size / 1024)) KiB: $(echo "$out" | hey_rate) req/s, p99 $(echo "$out" | hey_p99) (status $codes)"
	if command -v wrk >/dev/null; then
		# wrk, a lighter client (C, 2 threads), for the share of the
		# two cores the load generator takes: 5 seconds.
		cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$work/body", "rb"); wrk.body = f:read("*a"); f:close()
LUA
		wout=$(wrk -t 2 -c 32 -d 5s --latency -s "$work/post.lua" "http://127.0.0.1:$port/q")
		echo "through Caddy (wrk, 5 s), $((size / 1024)) KiB: $(echo "$wout" | awk '/Requests\/sec/ {print $2}') req/s, p99 $(echo "$wout" | awk '/ 99%/ {print $2}')"
	fi
done
go test ./queue -run '^$' -bench LocalStoreAdd -benchtime 3000x -cpu 2 | awk '/^Benchmark/ {printf "store alone, %s: %.0f writes/s\n", $1, 1e9/$3}'
[ -n "${ACCEPT_ONLY:-}" ] && exit 0

echo "== 2. drain $DRAIN_N items of 1 KiB at concurrency 4"
curl -sf "http://localhost:$admin/webhook/queues/bench" ; echo
# Start from an empty queue: let the accept test's items drain first.
curl -sf -X POST "http://localhost:$admin/webhook/queues/bench/resume" >/dev/null
until curl -sf "http://localhost:$admin/webhook/queues/bench" | grep -q '"pending":0,"in_flight":0'; do sleep 0.5; done
curl -sf -X POST "http://localhost:$admin/webhook/queues/bench/pause" >/dev/null
head -c 1024 /dev/zero | tr '\0' 'a' >"$work/body"
hey -n "$DRAIN_N" -c 32 -m POST -T application/json -D "$work/body" "http://127.0.0.1:$port/q" >/dev/null
start=$(date +%s.%N)
curl -sf -X POST "http://localhost:$admin/webhook/queues/bench/resume" >/dev/null
until curl -sf "http://localhost:$admin/webhook/queues/bench" | grep -q '"pending":0,"in_flight":0'; do sleep 0.2; done
end=$(date +%s.%N)
echo "queue drain: $(python3 -c "print(round($DRAIN_N/($end-$start)))") deliveries/s"
out=$(hey -n "$DRAIN_N" -c 4 -m POST -T application/json -D "$work/body" "http://127.0.0.1:$port/proxy")
echo "plain reverse_proxy, hey -c 4: $(echo "$out" | hey_rate) req/s"
echo "== 4. throttle: $THROTTLE_N items behind rate 10/1s"
curl -sf -X POST "http://localhost:$admin/webhook/queues/slow/pause" >/dev/null
hey -n "$THROTTLE_N" -c 8 -m POST -T application/json -D "$work/body" "http://127.0.0.1:$port/slow" >/dev/null
before=$(wc -l <"$work/backend-access.log")
curl -sf -X POST "http://localhost:$admin/webhook/queues/slow/resume" >/dev/null
until curl -sf "http://localhost:$admin/webhook/queues/slow" | grep -q '"pending":0,"in_flight":0'; do sleep 1; done
python3 - "$work/backend-access.log" "$before" <<'PY'
import json, sys, bisect
lines = open(sys.argv[1]).read().splitlines()[int(sys.argv[2]):]
ts = sorted(json.loads(l)["ts"] for l in lines if l.strip())
worst = max(bisect.bisect_left(ts, t + 1.0) - i for i, t in enumerate(ts))
print(f"throttle: {len(ts)} attempts in {ts[-1]-ts[0]:.1f} s, at most {worst} in any one second (rate 10/1s)")
PY
kill "$caddy_pid"
wait "$caddy_pid" 2>/dev/null || true

echo "== 3. $BIG_N pending items of 1 KiB: start-up and memory"
go run ./scripts/queuefill -path "$work/big/bench.db" -n "$BIG_N" -size 1024
sed -i "s|path $work/queue|path $work/big|" "$work/Caddyfile"
start=$(date +%s.%N)
"$work/caddy" run --config "$work/Caddyfile" >"$work/caddy2.log" 2>&1 &
pid=$!
pids+=($pid)
until curl -sf "http://localhost:$admin/webhook/queues/bench" 2>/dev/null | grep -q "\"pending\":$BIG_N"; do sleep 0.02; done
end=$(date +%s.%N)
echo "start-up with $BIG_N pending: $(python3 -c "print(round($end-$start, 2))") s (until the admin API lists them)"
sleep 3
curl -sf "http://localhost:$admin/webhook/queues/bench/items?limit=10" >/dev/null
echo "resident memory: $(awk '/VmRSS/ {print int($2/1024) " MB"}' /proc/$pid/status), of which anonymous (heap, stacks) $(awk '/RssAnon/ {print int($2/1024) " MB"}' /proc/$pid/status), the rest the store's pages mapped from the file (file $(du -m "$work/big/bench.db" | cut -f1) MB)"
