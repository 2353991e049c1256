#!/usr/bin/env bash
# Runs the crash test (tests/e2e/test_crash.py): SIGKILL the server at random moments while
# it ingests, seals and compacts, and check that no acknowledged event is lost or doubled.
#   scripts/crash-test.sh            20 kills (as in CI)
#   scripts/crash-test.sh --long     100 kills
#   scripts/crash-test.sh --cycles N N kills
# LODESTAR_CRASH_SEED=S reuses the kill times and batch contents of an earlier run; LODESTAR_BIN
# picks the binary (default: the newer of target/release and target/debug).
# 崩溃测试：随机 SIGKILL 服务进程，检查已确认的事件不丢不重。
set -euo pipefail
cd "$(dirname "$0")/.."

cycles=${LODESTAR_CRASH_CYCLES:-20}
while [ $# -gt 0 ]; do
  case "$1" in
    --long) cycles=100 ;;
    --cycles) shift; cycles=${1:?--cycles needs a number} ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "crash-test: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

export LODESTAR_CRASH_CYCLES=$cycles
exec python3 -m pytest tests/e2e/test_crash.py -q -s -p no:cacheprovider
