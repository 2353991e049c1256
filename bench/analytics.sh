#!/usr/bin/env bash
# Analytics benchmark, side by side in one run on the same data: Lodestar's kernels (through
# the server's reader), DuckDB (in-memory table) and chDB (MergeTree ordered by person, time),
# 2 threads each. The data: the synthetic shop loaded through Lodestar's write path, then its
# hot columns exported as CSV for the peers.
# usage: bench/analytics.sh [USERS=220000 (about 10 M events)] [THREADS=2] [RUNS=3]
# 分析基准：同一数据上对比 Lodestar、DuckDB 与 chDB。
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-220000}; threads=${2:-2}; runs=${3:-3}
cargo build --release --locked -p lodestar-bench >/dev/null
python3 -c 'import duckdb, chdb' 2>/dev/null || python3 -m pip install -q duckdb==2.0.1 chdb==4.4.0
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"
work=${LODESTAR_BENCH_DIR:-/tmp/lodestar-analytics-$users}
if [ ! -d "$work/data" ]; then
  "$bin/load" "$work/data" "$users" 365 7
fi
[ -f "$work/hot.csv" ] || "$bin/export_hot" "$work/data" bench "$work/hot.csv"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== lodestar"
"$bin/analyses" "$work/data" bench "$runs" 2025-01-01 2025-12-31 2>/dev/null | grep -v "1 thread"
echo "== peers"
python3 bench/analytics_peers.py "$work/hot.csv" "$threads" "$runs"
