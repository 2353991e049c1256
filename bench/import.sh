#!/usr/bin/env bash
# Import benchmark: a synthetic orders export of ROWS rows (default 10 million) imported with
# `lodestar import` into a fresh data folder; then the same file again (idempotent re-run).
# usage: bench/import.sh [ROWS=10000000]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-10000000}
cargo build --release --locked -p lodestar -p lodestar-bench >/dev/null
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"
work=$(mktemp -d /tmp/lodestar-import-XXXX)
trap 'rm -rf "$work"' EXIT
"$bin/orders_csv" "$work/orders.csv" "$rows"
sync  # the generator's writeback is not part of the import
ls -l "$work/orders.csv"
"$bin/lodestar" --data-dir "$work/data" projects create shop >/dev/null 2>&1
echo "first import:"
/usr/bin/time -f "wall %e s, max rss %M KiB" "$bin/lodestar" --data-dir "$work/data" import --project shop --quiet "$work/orders.csv" 2>&1 | grep -v INFO
echo "re-run of the same file:"
/usr/bin/time -f "wall %e s, max rss %M KiB" "$bin/lodestar" --data-dir "$work/data" import --project shop --quiet "$work/orders.csv" 2>&1 | grep -v INFO
