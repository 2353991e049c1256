#!/usr/bin/env bash
# The segment benchmark: a five-condition segment (two traits, a behavioural count over 30
# days, the lifecycle stage, predicted CLV) over 10 M profiles / ~100 M events, and the cost
# per incoming event of keeping segments and computed attributes current.
# 分群基准：1000 万用户画像、约 1 亿事件上的五条件分群，以及每条新事件的增量更新成本。
#
# usage: bench/segment.sh [DATA_DIR=/tmp/bench-seg] [RUNS=5] [EVENTS=20000]
#
# DATA_DIR is made once (about 30 minutes on 2 cores): 2.2 M synthetic shoppers with a year
# of events (the analytics benchmark's store: `load DIR 2200000 365 7`), then 7.8 M
# profiles without events (a CRM import: identify calls with traits). If the analytics
# benchmark's store exists (LODESTAR_BENCH_SOURCE, default /tmp/bench-100m) it is copied.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/tmp/bench-seg}
RUNS=${2:-5}
EVENTS=${3:-20000}
SOURCE=${LODESTAR_BENCH_SOURCE:-/tmp/bench-100m}
cargo build --release --locked -p lodestar-bench --bin load --bin segment
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release"
if [ ! -d "$DIR/projects" ]; then
  if [ -d "$SOURCE/projects" ]; then
    echo "copying $SOURCE to $DIR"
    cp -r "$SOURCE" "$DIR"
    rm -f "$DIR/LOCK"
  else
    "$BIN/load" "$DIR" 2200000 365 7
  fi
  "$BIN/segment" "$DIR" profiles 7800000
fi
"$BIN/segment" "$DIR" run "$RUNS" "$EVENTS"
