"""What the static policy costs per request, against parsing the same source.

Scripts an agent sends reassign and re-read the same names (``df = ...`` throughout). Each
size below is checked with ``StaticPolicy.check`` and, as the baseline of the same run, only
parsed (``ast.parse``, the floor any AST policy pays). The ratio should stay flat as the
script grows: a check that walks every binding of a name at every read grows with the
square of the size instead.

    .venv/bin/python benchmarks/bench_policy.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import median_ms
from security.policy import StaticPolicy

# A typical agent-written analysis: read, clean, group, pivot, plot, describe, save.
AGENT_SCRIPT = """\
import pandas as pd
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

df = pd.read_csv("sales.csv", parse_dates=["date"])
df = df.dropna(subset=["amount"])
df["month"] = df["date"].dt.to_period("M")
df["amount"] = pd.to_numeric(df["amount"], errors="coerce")
summary = df.groupby(["region", "month"])["amount"].agg(["sum", "mean", "count"]).reset_index()
summary = summary.sort_values(["region", "month"])
print(summary.head(20).to_string())

top = df.groupby("product")["amount"].sum().nlargest(10)
print("Top products:")
for name, value in top.items():
    print(f"  {name}: {value:,.2f}")

pivot = df.pivot_table(index="month", columns="region", values="amount", aggfunc="sum").fillna(0)
growth = pivot.pct_change().replace([np.inf, -np.inf], np.nan).fillna(0)
print(growth.tail(6).round(3).to_string())

fig, axes = plt.subplots(2, 1, figsize=(10, 8))
pivot.plot(ax=axes[0], title="Monthly sales by region")
axes[0].set_ylabel("amount")
top.plot.bar(ax=axes[1], title="Top 10 products")
axes[1].set_ylabel("amount")
fig.tight_layout()
fig.savefig("sales.png", dpi=100)

def describe(frame, column):
    values = frame[column]
    return {
        "min": float(values.min()),
        "max": float(values.max()),
        "mean": float(values.mean()),
        "median": float(values.median()),
        "std": float(values.std()),
    }

stats = {region: describe(group, "amount") for region, group in df.groupby("region")}
for region, s in stats.items():
    print(region, ", ".join(f"{k}={v:.1f}" for k, v in s.items()))

outliers = df[np.abs(df["amount"] - df["amount"].mean()) > 3 * df["amount"].std()]
print(f"{len(outliers)} outliers")
outliers.to_csv("outliers.csv", index=False)
corr = df.select_dtypes("number").corr()
print(corr.round(2).to_string())
result = {"rows": len(df), "regions": df["region"].nunique(), "total": float(df["amount"].sum())}
print(result)
"""
STEP = (
    "df = pd.read_csv('sales.csv')\n"
    "result = df.groupby('region')['amount'].sum().sort_values()\n"
    "print(result.head(10))\n"
)
SCRIPTS = {
    "pandas one-liner": "import pandas as pd\nprint(pd.DataFrame({'a': [1, 2, 3]}).a.sum())",
    "agent analysis script": AGENT_SCRIPT,
    **{f"rebinding x{n}": "import pandas as pd\n" + STEP * n for n in (25, 100, 400)},
    "x = 1 / print(x), 2500 each": "x = 1\n" * 2500 + "print(x)\n" * 2500,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    policy = StaticPolicy()
    print("| script | chars | parse ms (baseline) | policy check ms | check / parse | ok |")
    print("|---|---|---|---|---|---|")
    for name, code in SCRIPTS.items():
        parse = median_ms(lambda code=code: ast.parse(code), args.repeat)
        check = median_ms(lambda code=code: policy.check(code), args.repeat)
        ok = policy.check(code).ok
        print(f"| {name} | {len(code)} | {parse:.2f} | {check:.2f} | {check / parse:.1f}x | {ok} |")


if __name__ == "__main__":
    main()
