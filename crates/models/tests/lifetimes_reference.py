"""Reference predictions from the Python `lifetimes` package (0.11.3) for the Rust tests.

Fits BG/NBD, Pareto/NBD, MBG/NBD and Gamma-Gamma on the CDNOW summary CSV and BG/BB on the
donations data, then prints the fitted parameters and conditional predictions for 20 CDNOW
customers and every donations pattern. The Rust test (tests/it/lifetimes_reference.rs) reads
the parameters from this output and checks its own predictions with the same parameters.

Run from the crate folder:
    python tests/lifetimes_reference.py > tests/fixtures/lifetimes_reference.txt
"""

import sys

import numpy as np
import pandas as pd
from lifetimes import (
    BetaGeoBetaBinomFitter,
    BetaGeoFitter,
    GammaGammaFitter,
    ModifiedBetaGeoFitter,
    ParetoNBDFitter,
)
from lifetimes.utils import _customer_lifetime_value

HERE = sys.path[0]
cd = pd.read_csv(f"{HERE}/fixtures/cdnow_customers_summary_with_transactions.csv")
don = pd.read_csv(f"{HERE}/fixtures/donations.csv")

x, tx, T, zbar = cd["x"], cd["t_x"], cd["T"], cd["zbar"]
bg = BetaGeoFitter().fit(x, tx, T)
pn = ParetoNBDFitter().fit(x, tx, T)
mbg = ModifiedBetaGeoFitter().fit(x, tx, T)
rep = cd[cd["x"] > 0]
gg = GammaGammaFitter().fit(rep["x"], rep["zbar"])
bb = BetaGeoBetaBinomFitter().fit(don["frequency"], don["recency"], don["periods"], don["weights"])


def params(name, model, keys):
    print("params", name, " ".join(repr(float(model.params_[k])) for k in keys))


params("bg_nbd", bg, ["r", "alpha", "a", "b"])
params("pareto_nbd", pn, ["r", "alpha", "s", "beta"])
params("mbg_nbd", mbg, ["r", "alpha", "a", "b"])
params("gamma_gamma", gg, ["p", "q", "v"])
params("bg_bb", bb, ["alpha", "beta", "gamma", "delta"])

# 20 customers: the first 10 and 10 spread over the rest (zero and high frequencies).
rows = list(range(10)) + list(range(150, 2357, 230))
sel = cd.iloc[rows]
sx, stx, sT, sz = sel["x"], sel["t_x"], sel["T"], sel["zbar"]
spend = gg.conditional_expected_average_profit(sx, sz)
cols = {
    "bg_alive": bg.conditional_probability_alive(sx, stx, sT),
    "bg_exp10": bg.conditional_expected_number_of_purchases_up_to_time(10, sx, stx, sT),
    "bg_exp52": bg.conditional_expected_number_of_purchases_up_to_time(52, sx, stx, sT),
    "pn_alive": pn.conditional_probability_alive(sx, stx, sT),
    "pn_exp10": pn.conditional_expected_number_of_purchases_up_to_time(10, sx, stx, sT),
    "pn_exp52": pn.conditional_expected_number_of_purchases_up_to_time(52, sx, stx, sT),
    "mbg_alive": mbg.conditional_probability_alive(sx, stx, sT),
    "mbg_exp10": mbg.conditional_expected_number_of_purchases_up_to_time(10, sx, stx, sT),
    "mbg_exp52": mbg.conditional_expected_number_of_purchases_up_to_time(52, sx, stx, sT),
    "gg_spend": spend,
    # 12 monthly steps of 4.345 weeks (lifetimes' month), 1 % per month.
    "bg_clv12": _customer_lifetime_value(bg, sx, stx, sT, spend, time=12, discount_rate=0.01, freq="W"),
}
print("customers id x t_x T zbar " + " ".join(cols))
for i, idx in enumerate(sel.index):
    vals = [repr(float(np.asarray(c)[i])) for c in cols.values()]
    print(
        "customer",
        int(cd.loc[idx, "ID"]),
        int(sx.iloc[i]),
        repr(float(stx.iloc[i])),
        repr(float(sT.iloc[i])),
        repr(float(sz.iloc[i])),
        " ".join(vals),
    )

print("patterns x t_x n bb_alive1 bb_exp5")
f, r, n = don["frequency"], don["recency"], don["periods"]
alive = bb.conditional_probability_alive(1, f, r, n)
exp5 = bb.conditional_expected_number_of_purchases_up_to_time(5, f, r, n)
for i in range(len(don)):
    print("pattern", int(f[i]), int(r[i]), int(n[i]), repr(float(alive[i])), repr(float(exp5[i])))
