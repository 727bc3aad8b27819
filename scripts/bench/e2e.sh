#!/usr/bin/env bash
# End-to-end load benchmark: one Caddy binary built from this repository,
# one stand-in backend, one redis-server, all on loopback, and wrk.
#
#   (a) plain     reverse_proxy to the backend
#   (b) chain     webhook_rate_limit (a `count rejected` limiter for forgers
#                 and a per-sender one) + webhook_auth github + dedup, memory
#   (c) redis     the same chain with the sender limiter and dedup on Redis
#   (d) invalid   a flood of bad signatures against (b)
#   (d0) invalid_nolimit  the same flood against (b) without the forger limiter
#   (r) respond   a plain `respond 401`, what (d) is compared with
#
# for 1 KiB and 64 KiB bodies. Every delivery is signed ahead of time by
# `caddy webhook sign` and gets an id of its own. The runs are interleaved
# and repeated (ROUNDS, default 3) and the medians reported, with the
# ratios the targets are about. Results go to stdout as a Markdown table
# and, raw, to $OUT (default: a temporary directory that is kept).
#
#   ./scripts/bench/e2e.sh          (DURATION=8s CONNECTIONS=32 ROUNDS=3)
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-8s}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-3}
SIZES=${SIZES:-"1024 65536"}
SIGNED=${SIGNED:-16}
OUT=${OUT:-$(mktemp -d /tmp/webhook-e2e.XXXXXX)}
mkdir -p "$OUT"
sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
need() { command -v "$1" >/dev/null || { $sudo apt-get update -qq && $sudo apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need redis-server redis-server

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

go build -o "$work/caddy" ./cmd/caddy
export BENCH_SECRET=bench-secret-1f2e3d

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$OUT/redis.log" 2>&1 &
pids+=($!)

backend_port=$(free_port)
cat >"$work/backend.Caddyfile" <<CADDY
{
	admin off
	auto_https off
	log {
		level ERROR
	}
}
http://127.0.0.1:$backend_port {
	respond "ok"
}
CADDY
"$work/caddy" run --config "$work/backend.Caddyfile" >"$OUT/backend.log" 2>&1 &
pids+=($!)

p_plain=$(free_port) p_chain=$(free_port) p_redis=$(free_port) p_respond=$(free_port) p_nolimit=$(free_port)
cat >"$work/gate.Caddyfile" <<CADDY
{
	admin off
	auto_https off
	log {
		level ERROR
	}
	webhook {
		redis {
			address 127.0.0.1:$redis_port
		}
	}
}
http://127.0.0.1:$p_plain {
	reverse_proxy 127.0.0.1:$backend_port
}
http://127.0.0.1:$p_chain {
	# A sender whose deliveries keep failing verification is shut out
	# before its bodies are read; real deliveries never spend this budget.
	webhook_rate_limit forgers_b {
		count rejected
		rate 100/1m
	}
	# Generous per-sender limit: wrk is one sender, and valid traffic must
	# not be refused; the limiter's cost is still paid on every request.
	webhook_rate_limit senders {
		rate 1000000/1s
	}
	webhook_auth github {
		secret {env.BENCH_SECRET}
		max_body 1MB
		dedup 1h
	}
	reverse_proxy 127.0.0.1:$backend_port
}
http://127.0.0.1:$p_nolimit {
	webhook_rate_limit senders_nolimit {
		rate 1000000/1s
	}
	webhook_auth github {
		secret {env.BENCH_SECRET}
		max_body 1MB
		dedup 1h
	}
	reverse_proxy 127.0.0.1:$backend_port
}
http://127.0.0.1:$p_redis {
	# The forger limiter stays on this node's memory; the per-sender
	# budget and dedup are the fleet's, on Redis.
	webhook_rate_limit forgers_c {
		count rejected
		rate 100/1m
	}
	webhook_rate_limit senders_redis {
		rate 1000000/1s
		store redis
	}
	webhook_auth github {
		secret {env.BENCH_SECRET}
		max_body 1MB
		dedup 1h
		store redis
	}
	reverse_proxy 127.0.0.1:$backend_port
}
http://127.0.0.1:$p_respond {
	respond "signature invalid" 401
}
CADDY
"$work/caddy" run --config "$work/gate.Caddyfile" >"$OUT/gate.log" 2>&1 &
pids+=($!)

for port in $backend_port $p_plain $p_chain $p_redis $p_respond $p_nolimit $redis_port; do
	up=
	for _ in $(seq 100); do
		if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then up=1; break; fi
		sleep 0.1
	done
	if [ -z "$up" ]; then
		echo "nothing listens on port $port; logs:" >&2
		tail -3 "$OUT"/*.log >&2
		exit 1
	fi
done

# Signed deliveries: SIGNED bodies per size, signed with the right secret
# (valid/) and with another one (invalid/).
for size in $SIZES; do
	for kind in valid invalid; do
		dir="$work/$size/$kind"
		mkdir -p "$dir"
		secret=$BENCH_SECRET
		[ "$kind" = invalid ] && secret=not-the-secret
		for i in $(seq "$SIGNED"); do
			python3 -c "import sys,json; n=int(sys.argv[1]); i=sys.argv[2]; h='{\"ref\":\"refs/heads/main\",\"n\":'+i+',\"pad\":\"'; t='\"}'; sys.stdout.write(h+'x'*(n-len(h)-len(t))+t)" "$size" "$i" >"$dir/$i.body"
			"$work/caddy" webhook sign --provider github --secret "$secret" --body-file "$dir/$i.body" >"$dir/$i.headers"
		done
	done
done

# run <label> <port> <size> <kind> <round>: one wrk run; prints
# "label size rps p50_ms p99_ms non2xx requests".
run() {
	local label=$1 port=$2 size=$3 kind=$4 round=$5
	local raw="$OUT/$label-$size-$round.txt"
	wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/bench/e2e.lua "http://127.0.0.1:$port/hook" \
		-- "$label$round$RANDOM" "$work/$size/$kind" "$SIGNED" >"$raw"
	awk -v label="$label" -v size="$size" '
		function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
		/^ +50%/ { p50 = ms($2) }
		/^ +99%/ { p99 = ms($2) }
		/requests in/ { reqs = $1 }
		/Non-2xx/ { non2xx = $NF }
		/^Requests\/sec/ { rps = $2 }
		END { printf "%s %s %.0f %.3f %.3f %d %d\n", label, size, rps, p50, p99, non2xx, reqs }' "$raw"
}

results="$OUT/results.txt"
: >"$results"
for round in $(seq "$ROUNDS"); do
	for size in $SIZES; do
		redis-cli -p "$redis_port" flushall >/dev/null
		run plain "$p_plain" "$size" valid "$round" >>"$results"
		run chain "$p_chain" "$size" valid "$round" >>"$results"
		run redis "$p_redis" "$size" valid "$round" >>"$results"
		run invalid "$p_chain" "$size" invalid "$round" >>"$results"
		run invalid_nolimit "$p_nolimit" "$size" invalid "$round" >>"$results"
		run respond "$p_respond" "$size" invalid "$round" >>"$results"
	done
	echo "round $round done" >&2
done

# Every valid run must have been all 2xx, every 401 run all 401.
awk '($1=="plain"||$1=="chain"||$1=="redis") && $6!=0 { print "run " $0 ": non-2xx answers in a valid run" > "/dev/stderr"; bad=1 }
     ($1=="invalid"||$1=="invalid_nolimit"||$1=="respond") && $6!=$7 { print "run " $0 ": 2xx answers in a 401 run" > "/dev/stderr"; bad=1 }
     END { exit bad }' "$results"

python3 - "$results" "$DURATION" "$CONNECTIONS" "$ROUNDS" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
med = {}
for label in ("plain", "chain", "redis", "invalid", "invalid_nolimit", "respond"):
    for size in sorted({r[1] for r in rows}, key=int):
        rs = [r for r in rows if r[0] == label and r[1] == size]
        med[label, size] = tuple(st.median(float(r[i]) for r in rs) for i in (2, 3, 4))
sizes = sorted({r[1] for r in rows}, key=int)
print(f"wrk -t2 -c{sys.argv[3]} -d{sys.argv[2]}, median of {sys.argv[4]} interleaved rounds\n")
print("| run | body | requests/s | p50 | p99 |")
print("|---|---|---|---|---|")
names = {"plain": "(a) plain reverse_proxy", "chain": "(b) rate limits + webhook_auth + dedup, memory",
         "redis": "(c) the same chain on Redis", "invalid": "(d) invalid signatures against (b)",
         "invalid_nolimit": "(d0) invalid signatures, no forger limiter", "respond": "plain respond 401"}
for label in names:
    for size in sizes:
        rps, p50, p99 = med[label, size]
        print(f"| {names[label]} | {int(size)//1024} KiB | {rps:,.0f} | {p50:.2f} ms | {p99:.2f} ms |")
print("\n| ratio | body | value |")
print("|---|---|---|")
for size in sizes:
    k = f"{int(size)//1024} KiB"
    print(f"| (b)/(a) throughput | {k} | {med['chain',size][0]/med['plain',size][0]:.2f} |")
    print(f"| (b)/(a) p99 | {k} | {med['chain',size][2]/med['plain',size][2]:.2f} |")
    print(f"| (c)/(a) throughput | {k} | {med['redis',size][0]/med['plain',size][0]:.2f} |")
    print(f"| (d)/respond throughput | {k} | {med['invalid',size][0]/med['respond',size][0]:.2f} |")
    print(f"| (d0)/respond throughput | {k} | {med['invalid_nolimit',size][0]/med['respond',size][0]:.2f} |")
PY
echo "raw wrk output: $OUT" >&2
