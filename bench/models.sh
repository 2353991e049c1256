#!/usr/bin/env bash
# Customer-value models side by side with Python `lifetimes` 0.11.3, one run, same data:
# BG/NBD and Gamma-Gamma fits on N synthetic customers drawn from the CDNOW estimates, then
# every customer scored (P(alive), expected purchases in 52 weeks, expected spend, 12-month
# CLV). Prints both sides' timings, peak memory, and the parameters' largest relative gap.
# usage: bench/models.sh [CUSTOMERS=1000000] [THREADS=2]
# 客户价值模型基准：与 Python lifetimes 在同一数据上对比拟合与打分。
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}; threads=${2:-2}
venv=${LODESTAR_LIFETIMES_VENV:-/tmp/lodestar-lifetimes-venv}
if ! "$venv/bin/python" -c 'import lifetimes' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q lifetimes==0.11.3 pandas==3.1.1 numpy==2.4.6 scipy==1.17.1 autograd==1.9.1
fi
cargo build --release --locked -p lodestar-models --example fit_synthetic >/dev/null
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/examples/fit_synthetic"
csv=${LODESTAR_BENCH_DIR:-/tmp}/lodestar-models-$n.csv
out=$(mktemp -d)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== lodestar ($threads threads)"
/usr/bin/time -f "peak RSS %M KiB" "$bin" "$n" "$csv" --threads "$threads" 2>&1 | tee "$out/lodestar"
echo "== lifetimes $("$venv/bin/python" -c 'import lifetimes; print(lifetimes.__version__)')"
/usr/bin/time -f "peak RSS %M KiB" "$venv/bin/python" bench/models_peer.py "$csv" 2>&1 | tee "$out/lifetimes"
python3 - "$out/lodestar" "$out/lifetimes" <<'PY'
import re, sys
ours, theirs = (open(p).read() for p in sys.argv[1:3])
def params(text):
    return {m[1]: [float(v) for v in m[2].split()] for m in re.finditer(r"^params (\w+) (.*)$", text, re.M)}
a, b = params(ours), params(theirs)
gap = max(abs(x - y) / abs(y) for k in a for x, y in zip(a[k], b[k]))
sa, sb = ([float(v) for v in re.search(r"^scores (.*)$", t, re.M)[1].split()] for t in (ours, theirs))
score_gap = max(abs(x - y) / abs(y) for x, y in zip(sa, sb))
t_ours = sum(float(x) for x in re.findall(r"total ([0-9.]+) s;", ours)) + float(re.search(r"scored \d+ customers in ([0-9.]+) s", ours)[1])
t_theirs = float(re.search(r"lifetimes total ([0-9.]+) s", theirs)[1])
rss = [int(re.findall(r"peak RSS (\d+) KiB", t)[-1]) / 1024 for t in (ours, theirs)]
print(f"largest relative gap: parameters {gap:.2e}, summed scores {score_gap:.2e}")
print(f"fits + scoring: lodestar {t_ours:.2f} s, lifetimes {t_theirs:.2f} s: {t_theirs / t_ours:.1f}x")
print(f"peak RSS (whole process): lodestar {rss[0]:.0f} MiB (simulating the customers included), lifetimes {rss[1]:.0f} MiB")
PY
