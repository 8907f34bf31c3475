"""Ordinary data scripts that sit close to the bypass classes and must stay clean.

Each one uses something the stricter rules look at (query/eval strings, formulas, sympy,
yaml, numpy.load, format strings, namespace checks, getattr, files written then read) the way
generated analysis code does.
"""

from __future__ import annotations

CORPUS: dict[str, str] = {
    "query_with_at_variable": """
import pandas as pd
df = pd.read_csv("sales.csv")
threshold = df["amount"].quantile(0.9)
big = df.query("amount > @threshold and region != 'North'")
df.eval("net = amount - cost", inplace=True)
print(big.shape, pd.eval("1 + 2"))
""",
    "query_backticks": """
import pandas as pd
df = pd.read_csv("survey.csv")
print(df.query("`age group` == '18-25' and score >= 3").mean(numeric_only=True))
""",
    "formula_ols": """
import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
df = pd.read_csv("houses.csv")
model = smf.ols("price ~ np.log(area) + rooms + C(district)", data=df).fit()
print(model.summary().tables[1])
""",
    "formula_patsy": """
import pandas as pd
from patsy import dmatrices
df = pd.read_csv("houses.csv")
y, X = dmatrices("price ~ area + I(area ** 2) + Q('year built')", df, return_type="dataframe")
print(X.columns.tolist())
""",
    "sympy_solve": """
import sympy as sp
x, y = sp.symbols("x y")
expr = sp.sympify("x**2 - 4*x + 4")
print(sp.solve(expr, x), sp.simplify("sin(x)**2 + cos(x)**2"), sp.Rational("1/3"))
f = sp.lambdify(x, expr, "numpy")
print(f(2.0), sp.S(1) / 3, sp.S.Half)
""",
    "yaml_safe": """
import yaml
with open("config.yaml") as fh:
    config = yaml.safe_load(fh)
with open("config.yaml") as fh:
    again = yaml.load(fh, Loader=yaml.SafeLoader)
print(config == again)
""",
    "numpy_load": """
import numpy as np
a = np.load("a.npy")
b = np.load("b.npz", allow_pickle=False)
np.save("c.npy", a + b["x"])
print(a.shape)
""",
    "format_strings": """
name, value = "mean", 3.14159
row = {"id": 3}
print("{:.2f}".format(value), "{0}: {1:>10.3f}".format(name, value))
print("{name} = {row[id]}".format(name=name, row=row), "%s=%d" % (name, 1))
template = "{} rows"
print(template.format(5))
""",
    "namespace_checks": """
import pandas as pd
df = pd.read_csv("sales.csv")
if "df" in locals() and "pd" in globals():
    print("{a} {b}".format(a=1, b=2))
print(globals().get("df") is df)
""",
    "getattr_constant": """
import operator
import pandas as pd
df = pd.read_csv("sales.csv")
agg = getattr(df["amount"], "sum")()
rows = sorted(df.itertuples(), key=operator.attrgetter("amount"))
print(agg, len(rows), hasattr(df, "amount"))
""",
    "write_outputs_then_read": """
import json
from pathlib import Path
import pandas as pd
out = Path("out")
out.mkdir(exist_ok=True)
df = pd.read_csv("sales.csv")
for region, part in df.groupby("region"):
    part.to_csv(out / f"{region}.csv", index=False)
(out / "summary.json").write_text(json.dumps({"regions": df["region"].nunique()}))
with open("report.txt", "w") as fh:
    fh.write(df.describe().to_string())
print(sorted(p.name for p in out.iterdir()))
""",
    "copy_inputs": """
import shutil
import pandas as pd
for name in ["a.csv", "b.csv"]:
    shutil.copy(name, "backup_" + name)
print(pd.read_csv("backup_a.csv").shape)
""",
    "plot_in_function": """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

def plot(df, name):
    fig, ax = plt.subplots()
    df.plot(ax=ax)
    fig.savefig(f"{name}.png")

plot(pd.read_csv("sales.csv"), "sales")
""",
    "sklearn_joblib_free": """
import json
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
df = pd.read_csv("churn.csv")
X, y = df.drop(columns="churn"), df["churn"]
scores = cross_val_score(LogisticRegression(max_iter=500), X, y, cv=5)
print(json.dumps({"mean": float(np.mean(scores))}))
""",
    "styled_table": """
import matplotlib.ticker as mticker
import matplotlib.pyplot as plt
import pandas as pd
df = pd.read_csv("sales.csv")
html = df.describe().style.format("{:.2f}").to_html()
pd.options.display.float_format = "{:,.2f}".format
fig, ax = plt.subplots()
ax.yaxis.set_major_formatter(mticker.StrMethodFormatter("{x:,.0f}"))
print(len(html))
""",
    "import_in_a_writing_loop": """
for n in ("a b#1.txt", "q?x.txt", "sub/e.txt"):
    import os; os.makedirs("sub", exist_ok=True); open(n, "w").write(n)
""",
    "pil_thumbnail": """
from PIL import Image
img = Image.open("photo.jpg")
img.thumbnail((128, 128))
img.save("thumb.png")
print(img.size)
""",
}
