#!/usr/bin/env bash
# HTTP ingestion benchmark with durable acknowledgement: wrk (load generator, same machine)
# posts /v1/batch requests of 100 unique ~300-byte events; a 200 means the events are
# fsync'd. Prints events/s and batch latency percentiles, then checks the stored count.
# usage: bench/ingest.sh [SECONDS=30] [CONNECTIONS=32] [WRK_THREADS=1]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}; conns=${2:-32}; threads=${3:-1}
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
cargo build --release --locked -p lodestar >/dev/null
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/lodestar"
data=$(mktemp -d /tmp/lodestar-bench-XXXX)
port=$((20000 + RANDOM % 20000))
key=$("$bin" --data-dir "$data" projects create bench 2>/dev/null)
"$bin" --data-dir "$data" serve --listen "127.0.0.1:$port" 2>"$data/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "wrk -t$threads -c$conns -d${secs}s, batches of 100 events"
LODESTAR_KEY=$key wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 10s -s bench/ingest.lua "http://127.0.0.1:$port" | tee "$data/wrk.out"
stored=$(curl -s "http://127.0.0.1:$port/metrics" | awk '$1=="lodestar_events_stored_total"{print $2}')
sealed=$(curl -s "http://127.0.0.1:$port/metrics" | awk '$1=="lodestar_events_sealed_total"{print $2}')
echo "server says stored: $stored events, of which sealed into parts: $sealed; commit latency:"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^lodestar_store_commit_duration_seconds_(sum|count)'
echo "rss_kb: $(awk '/VmRSS/{print $2}' /proc/$pid/status)"
