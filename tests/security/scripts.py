"""Ordinary data-science scripts the static policy must pass without critical/major findings.

Written the way generated code looks: inputs read by bare file name, outputs written into the
working directory, results printed as JSON.
"""

from __future__ import annotations

GROUPBY = """
import json
import pandas as pd

df = pd.read_csv("sales.csv", parse_dates=["date"])
df["month"] = df["date"].dt.to_period("M").astype(str)
summary = (
    df.groupby(["region", "month"], as_index=False)
    .agg(revenue=("amount", "sum"), orders=("order_id", "nunique"))
    .sort_values(["region", "month"])
)
top = summary.loc[summary.groupby("region")["revenue"].idxmax()]
summary.to_csv("summary.csv", index=False)
print(json.dumps({"rows": len(summary), "top": top.to_dict(orient="records")}, default=str))
"""

EXCEL_MULTI_SHEET = """
import pandas as pd
from openpyxl import load_workbook
from openpyxl.styles import Font

sheets = pd.read_excel("budget.xlsx", sheet_name=None)
totals = {}
for name, frame in sheets.items():
    numeric = frame.select_dtypes("number")
    totals[name] = numeric.sum().to_dict()

with pd.ExcelWriter("budget_report.xlsx", engine="openpyxl") as writer:
    for name, frame in sheets.items():
        frame.describe().to_excel(writer, sheet_name=f"{name[:25]}_stats")
    pd.DataFrame(totals).T.to_excel(writer, sheet_name="totals")

wb = load_workbook("budget_report.xlsx")
for ws in wb.worksheets:
    for cell in ws[1]:
        cell.font = Font(bold=True)
wb.save("budget_report.xlsx")
print(totals)
"""

PDF_TEXT = """
import re
import json
import pdfplumber
from pypdf import PdfReader

reader = PdfReader("report.pdf")
meta = {"pages": len(reader.pages), "title": (reader.metadata or {}).get("/Title")}
emails = set()
with pdfplumber.open("report.pdf") as pdf:
    for page in pdf.pages:
        text = page.extract_text() or ""
        emails.update(re.findall(r"[\\w.+-]+@[\\w-]+\\.[\\w.]+", text))
        for table in page.extract_tables():
            print(len(table), "rows in a table")
print(json.dumps({"meta": meta, "emails": sorted(emails)}))
"""

DOCX_HEADINGS = """
from collections import Counter
from docx import Document

doc = Document("proposal.docx")
headings = [
    (p.style.name, p.text.strip())
    for p in doc.paragraphs
    if p.style is not None and p.style.name.startswith("Heading")
]
levels = Counter(style for style, _ in headings)
for style, text in headings:
    indent = "  " * (int(style.split()[-1]) - 1 if style.split()[-1].isdigit() else 0)
    print(f"{indent}- {text}")
out = Document()
out.add_heading("Outline", level=1)
for _, text in headings:
    out.add_paragraph(text, style="List Bullet")
out.save("outline.docx")
print(dict(levels))
"""

XML_XPATH = """
import csv
from lxml import etree

tree = etree.parse("catalog.xml")
root = tree.getroot()
ns = {"c": root.nsmap.get(None, "")} if None in root.nsmap else {}
books = tree.xpath("//book") if not ns else tree.xpath("//c:book", namespaces=ns)
rows = []
for book in books:
    rows.append({
        "id": book.get("id"),
        "title": book.findtext("title"),
        "price": float(book.findtext("price") or 0),
    })
with open("books.csv", "w", newline="", encoding="utf-8") as fh:
    writer = csv.DictWriter(fh, fieldnames=["id", "title", "price"])
    writer.writeheader()
    writer.writerows(rows)
print(f"{len(rows)} books, mean price {sum(r['price'] for r in rows) / max(len(rows), 1):.2f}")
"""

PARQUET = """
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

table = pq.read_table("events.parquet", columns=["user", "event", "ts"])
print(table.schema)
df = table.to_pandas()
daily = df.set_index("ts").groupby("event").resample("D")["user"].nunique().reset_index()
pq.write_table(pa.Table.from_pandas(daily), "daily_users.parquet", compression="zstd")
df.to_feather("events.feather")
print(daily.head(10).to_string())
"""

HDF5 = """
import h5py
import numpy as np

with h5py.File("measurements.h5", "r") as f:
    names = []
    f.visit(names.append)
    data = f["sensors/temperature"][:]
    attrs = dict(f["sensors"].attrs)
clean = np.where(np.isfinite(data), data, np.nan)
stats = {
    "mean": float(np.nanmean(clean)),
    "std": float(np.nanstd(clean)),
    "p95": float(np.nanpercentile(clean, 95)),
}
with h5py.File("summary.h5", "w") as out:
    out.create_dataset("temperature_smoothed", data=np.convolve(np.nan_to_num(clean), np.ones(5) / 5, mode="same"))
    out.attrs.update(stats)
np.save("clean.npy", clean)
print(names, attrs, stats)
"""

NETCDF_XARRAY = """
import xarray as xr
import netCDF4

with netCDF4.Dataset("climate.nc") as nc:
    print({name: var.shape for name, var in nc.variables.items()})

ds = xr.open_dataset("climate.nc")
monthly = ds["t2m"].resample(time="1MS").mean()
anomaly = monthly.groupby("time.month") - monthly.groupby("time.month").mean("time")
anomaly.to_netcdf("t2m_anomaly.nc")
print(float(anomaly.mean()), ds.attrs.get("title"))
"""

PIL_EXIF = """
import json
from PIL import Image, ExifTags

img = Image.open("photo.jpg")
exif = img.getexif()
tags = {ExifTags.TAGS.get(k, str(k)): str(v) for k, v in exif.items()}
thumb = img.copy()
thumb.thumbnail((256, 256))
thumb.save("thumb.png")
gray = img.convert("L")
histogram = gray.histogram()
print(json.dumps({"size": img.size, "mode": img.mode, "exif": tags, "dark_pixels": sum(histogram[:32])}))
"""

ZIP_OF_CSVS = """
import io
import zipfile
import pandas as pd

frames = []
with zipfile.ZipFile("exports.zip") as zf:
    for info in zf.infolist():
        if info.filename.endswith(".csv") and not info.is_dir():
            with zf.open(info) as fh:
                frame = pd.read_csv(io.TextIOWrapper(fh, encoding="utf-8"))
                frame["source"] = info.filename
                frames.append(frame)
combined = pd.concat(frames, ignore_index=True)
combined.to_csv("combined.csv", index=False)
with zipfile.ZipFile("combined.zip", "w", compression=zipfile.ZIP_DEFLATED) as out:
    out.write("combined.csv")
print(combined.groupby("source").size().to_dict())
"""

YAML_CONFIG = """
import yaml
import json
from datetime import datetime, timezone

with open("config.yaml", encoding="utf-8") as fh:
    config = yaml.safe_load(fh)
thresholds = config.get("thresholds", {})
checked = {k: (v > 10) for k, v in thresholds.items() if isinstance(v, (int, float))}
config["checked_at"] = datetime.now(timezone.utc).isoformat()
with open("config_checked.yaml", "w", encoding="utf-8") as fh:
    yaml.safe_dump(config, fh, sort_keys=False)
print(json.dumps(checked))
"""

STATSMODELS_OLS = """
import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf

df = pd.read_csv("housing.csv")
df = df.dropna(subset=["price", "area", "rooms"])
df["log_price"] = np.log(df["price"])
model = smf.ols("log_price ~ area + rooms + C(district)", data=df).fit()
X = sm.add_constant(df[["area", "rooms"]])
robust = sm.OLS(df["log_price"], X).fit(cov_type="HC3")
with open("ols_summary.txt", "w") as fh:
    fh.write(model.summary().as_text())
print({"r2": model.rsquared, "params": robust.params.round(4).to_dict()})
"""

MATPLOTLIB_SAVEFIG = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

df = pd.read_csv("timeseries.csv", parse_dates=["date"], index_col="date")
fig, axes = plt.subplots(2, 1, figsize=(10, 8), sharex=True)
df["value"].plot(ax=axes[0], title="Value")
df["value"].rolling(7).mean().plot(ax=axes[0], label="7-day mean")
sns.histplot(df["value"], ax=axes[1], kde=True)
axes[0].legend()
fig.tight_layout()
fig.savefig("timeseries.png", dpi=150)
plt.savefig("timeseries.pdf")
plt.close(fig)
print("saved timeseries.png")
"""

SKLEARN_PIPELINE = """
import json
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import classification_report
from sklearn.model_selection import train_test_split, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

df = pd.read_csv("customers.csv")
target = df.pop("churned")
numeric = df.select_dtypes(include=np.number).columns.tolist()
categorical = [c for c in df.columns if c not in numeric]
pre = ColumnTransformer([
    ("num", StandardScaler(), numeric),
    ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
])
clf = Pipeline([("pre", pre), ("model", RandomForestClassifier(n_estimators=200, random_state=0))])
X_train, X_test, y_train, y_test = train_test_split(df, target, test_size=0.2, random_state=0)
scores = cross_val_score(clf, X_train, y_train, cv=5)
clf.fit(X_train, y_train)
report = classification_report(y_test, clf.predict(X_test), output_dict=True)
importances = getattr(clf.named_steps["model"], "feature_importances_", None)
with open("model_report.json", "w") as fh:
    json.dump({"cv": scores.tolist(), "report": report}, fh, indent=2)
print(json.dumps({"cv_mean": float(scores.mean()), "n_features": len(importances)}))
"""

JSON_OUTPUT = """
import json
import math
import statistics
from collections import defaultdict

with open("records.json", encoding="utf-8") as fh:
    records = json.load(fh)

by_category = defaultdict(list)
for rec in records:
    by_category[rec.get("category", "unknown")].append(float(rec["value"]))

result = {
    cat: {
        "n": len(vals),
        "mean": statistics.fmean(vals),
        "stdev": statistics.pstdev(vals) if len(vals) > 1 else 0.0,
        "log_sum": math.log1p(sum(vals)),
    }
    for cat, vals in sorted(by_category.items())
}
with open("result.json", "w", encoding="utf-8") as fh:
    json.dump(result, fh, indent=2, ensure_ascii=False)
print(json.dumps(result))
"""

PATHLIB_CWD = """
import os
import sys
import glob
import shutil
from pathlib import Path

here = Path.cwd()
out_dir = here / "output"
out_dir.mkdir(exist_ok=True)
os.makedirs("output/tables", exist_ok=True)
inputs = sorted(Path(".").glob("*.csv")) + [Path(p) for p in glob.glob("data_*.txt")]
for path in inputs:
    target = out_dir / path.name
    shutil.copy(path, target)
    print(path.name, path.stat().st_size, file=sys.stderr)
for name in os.listdir("."):
    if os.path.isfile(name) and name.endswith(".tmp"):
        os.remove(name)
(out_dir / "index.txt").write_text("\\n".join(p.name for p in inputs), encoding="utf-8")
print(len(inputs), os.getcwd() == str(here), os.path.join("output", "index.txt"))
"""

TEXT_NLP = """
import re
import string
from collections import Counter

import nltk
from textblob import TextBlob

text = open("reviews.txt", encoding="utf-8", errors="replace").read()
sentences = [s.strip() for s in re.split(r"[.!?]+", text) if s.strip()]
table = str.maketrans("", "", string.punctuation)
words = [w.lower().translate(table) for w in text.split()]
common = Counter(w for w in words if len(w) > 3).most_common(20)
polarity = [TextBlob(s).sentiment.polarity for s in sentences[:200]]
print({"sentences": len(sentences), "common": common, "mean_polarity": sum(polarity) / max(len(polarity), 1)})
print(nltk.__version__)
"""

DATACLASS_TOOLS = """
from __future__ import annotations

import csv
import logging
import warnings
from dataclasses import dataclass, asdict, field
from functools import lru_cache
from typing import Iterable

import numpy as np
import pandas as pd
from scipy import stats

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
log = logging.getLogger(__name__)
warnings.filterwarnings("ignore", category=FutureWarning)


@dataclass(frozen=True)
class Result:
    name: str
    statistic: float
    pvalue: float
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.name.strip())


class Analyzer:
    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.__dict__.setdefault("cache", {})

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(rows={len(self.frame)})"

    @lru_cache(maxsize=None)
    def ttest(self, a: str, b: str) -> Result:
        res = stats.ttest_ind(self.frame[a], self.frame[b], nan_policy="omit")
        return Result(f"{a} vs {b}", float(res.statistic), float(res.pvalue))


def pairs(cols: Iterable[str]):
    cols = list(cols)
    for i, a in enumerate(cols):
        for b in cols[i + 1:]:
            yield a, b


if __name__ == "__main__":
    df = pd.read_csv("experiment.csv")
    analyzer = Analyzer(df)
    log.info("%r", analyzer)
    results = [analyzer.ttest(a, b) for a, b in pairs(df.select_dtypes("number").columns)]
    with open("ttests.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(asdict(results[0]).keys()) if results else ["name"])
        writer.writeheader()
        for r in results:
            writer.writerow(asdict(r))
    agg = getattr(np, "median")
    print(type(analyzer).__name__, agg(np.arange(5)), len(results))
"""

TARFILE_GZIP = """
import gzip
import tarfile
import json
import hashlib

digests = {}
with tarfile.open("bundle.tar.gz", "r:gz") as tar:
    members = [m for m in tar.getmembers() if m.isfile()]
    for m in members:
        data = tar.extractfile(m).read()
        digests[m.name] = hashlib.sha256(data).hexdigest()
    tar.extractall("extracted", filter="data")
with gzip.open("digests.json.gz", "wt", encoding="utf-8") as fh:
    json.dump(digests, fh)
print(len(members), "files")
"""

SCRIPTS: dict[str, str] = {
    "groupby": GROUPBY,
    "excel_multi_sheet": EXCEL_MULTI_SHEET,
    "pdf_text": PDF_TEXT,
    "docx_headings": DOCX_HEADINGS,
    "xml_xpath": XML_XPATH,
    "parquet": PARQUET,
    "hdf5": HDF5,
    "netcdf_xarray": NETCDF_XARRAY,
    "pil_exif": PIL_EXIF,
    "zip_of_csvs": ZIP_OF_CSVS,
    "yaml_config": YAML_CONFIG,
    "statsmodels_ols": STATSMODELS_OLS,
    "matplotlib_savefig": MATPLOTLIB_SAVEFIG,
    "sklearn_pipeline": SKLEARN_PIPELINE,
    "json_output": JSON_OUTPUT,
    "pathlib_cwd": PATHLIB_CWD,
    "text_nlp": TEXT_NLP,
    "dataclass_tools": DATACLASS_TOOLS,
    "tarfile_gzip": TARFILE_GZIP,
}
