#!/usr/bin/env bash
# Dashboard page readiness on the large demo: 100,000 users, a year of events (~5 M), every
# page opened in Debian's Chromium, median time to ready over RUNS runs.
# 看板页面就绪时间：10 万用户演示数据，Chromium 中逐页打开。
#
# usage: bench/dashboard.sh [DATA_DIR=/tmp/lodestar-demo-100k] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/tmp/lodestar-demo-100k}
RUNS=${2:-3}
PORT=18680
cargo build --release --locked -p lodestar
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/lodestar"
if [ ! -d "$DIR/projects" ]; then
  /usr/bin/time -f "demo generated in %e s" "$BIN" --data-dir "$DIR" demo --users 100000 --days 365 --seed 7 --no-serve
fi
"$BIN" --data-dir "$DIR" serve --listen "127.0.0.1:$PORT" > "$DIR.serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.5; done
python3 bench/dashboard_pages.py "http://127.0.0.1:$PORT" demo "$RUNS"
