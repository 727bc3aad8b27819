#!/usr/bin/env bash
# Starts a Redis, two Caddy servers sharing it and a backend, all on
# loopback; sends the same signed GitHub delivery to both servers and
# shows that the backend receives it once. Stops everything on exit.
#
#   ./examples/fleet/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export GITHUB_WEBHOOK_SECRET=${GITHUB_WEBHOOK_SECRET:-fleet-demo-secret}
export REDIS_PORT=${REDIS_PORT:-6390} BACKEND_PORT=${BACKEND_PORT:-9000}
command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install -y redis-server)" >&2; exit 1; }

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
go build -o "$work/caddy" ./cmd/caddy

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$work/redis.log" &
"$work/caddy" run --config examples/fleet/backend.Caddyfile >"$work/backend.log" 2>&1 &
PORT=8081 ADMIN=2021 "$work/caddy" run --config examples/fleet/Caddyfile >"$work/a.log" 2>&1 &
PORT=8082 ADMIN=2022 "$work/caddy" run --config examples/fleet/Caddyfile >"$work/b.log" 2>&1 &
for port in 8081 8082; do
	for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

# The same delivery (same X-GitHub-Delivery id) to both servers, signed
# as GitHub would by `caddy webhook send`.
printf '%s' '{"action":"opened","number":1}' >"$work/body.json"
for port in 8081 8082 8081; do
	echo "== to :$port"
	"$work/caddy" webhook send --provider github --secret-env GITHUB_WEBHOOK_SECRET \
		--body-file "$work/body.json" --id 9f1c2e60-0001 --header 'X-GitHub-Event: pull_request' \
		"http://127.0.0.1:$port/github"
done
sleep 0.5
echo "the backend received the delivery $(grep -c '"uri":"/github"' "$work/backend.log") time(s)"
