"""The peer's side of bench/models.sh: the same fits and scores with Python `lifetimes`.

usage: python bench/models_peer.py CUSTOMERS.csv
Reads the customers `fit_synthetic` wrote (x, t_x, T in weeks, m = mean repeat spend), fits
BG/NBD on everyone and Gamma-Gamma on the repeat buyers, scores every customer (P(alive),
expected purchases in the next 52 weeks, expected spend per purchase, CLV over 12 months of
4.345 weeks at 1 % a month), and prints timings plus `params` and `scores` lines in the
format the Rust program prints.
"""

import resource
import sys
import time

import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter

d = pd.read_csv(sys.argv[1])
x, tx, T, m = d["x"], d["t_x"], d["T"], d["m"]

t = time.perf_counter()
bg = BetaGeoFitter().fit(x, tx, T)
bg_secs = time.perf_counter() - t
print(f"lifetimes BG/NBD: {len(d)} customers, {bg_secs:.3f} s; {dict(bg.params_)}", flush=True)

repeat = d[d["x"] > 0]
t = time.perf_counter()
gg = GammaGammaFitter().fit(repeat["x"], repeat["m"])
gg_secs = time.perf_counter() - t
print(f"lifetimes Gamma-Gamma: {len(repeat)} repeat buyers, {gg_secs:.3f} s; {dict(gg.params_)}", flush=True)
r, alpha, a, b = (bg.params_[k] for k in ("r", "alpha", "a", "b"))
p, q, v = (gg.params_[k] for k in ("p", "q", "v"))
print(f"params bgnbd {r} {alpha} {a} {b}")
print(f"params gg {p} {q} {v}")

t = time.perf_counter()
alive = bg.conditional_probability_alive(x, tx, T)
purchases = bg.conditional_expected_number_of_purchases_up_to_time(52, x, tx, T)
# lifetimes' expected profit ignores m for x = 0 (population mean), as Lodestar's does.
spend = gg.conditional_expected_average_profit(x, m.where(x > 0, 1.0))
clv = gg.customer_lifetime_value(bg, x, tx, T, m.where(x > 0, 1.0), time=12, discount_rate=0.01, freq="W")
score_secs = time.perf_counter() - t
print(f"lifetimes scored {len(d)} customers in {score_secs:.3f} s", flush=True)
print(f"scores {alive.sum()} {purchases.sum()} {spend.sum()} {clv.sum()}")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"lifetimes peak RSS {peak:.0f} MiB")
print(f"lifetimes total {bg_secs + gg_secs + score_secs:.3f} s")
