"""Real data tasks end to end through ``POST /v1/execute``, in each engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests import datafiles as df

Check = Callable[[dict[str, Any]], None]


def post(client: TestClient, code: str, files: list[Path], **fields: str) -> dict[str, Any]:
    handles = [("files", (p.name, p.read_bytes())) for p in files]
    response = client.post("/v1/execute", data={"code": code, **fields}, files=handles or None)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["success"], body
    return body


def last_json(body: dict[str, Any]) -> Any:
    return json.loads(body["output"].strip().splitlines()[-1])


TASKS: dict[str, tuple[list[Callable[[Path], Path]], list[str], str, Check]] = {
    "csv-groupby": (
        [df.employees_csv],
        ["employees.csv"],
        "import pandas as pd, json\n"
        "df = pd.read_csv('employees.csv')\n"
        "print(json.dumps(df.groupby('department')['salary'].mean().to_dict()))\n",
        lambda b: pytest.approx({"HR": 60000.0, "IT": 100000.0, "Sales": 60000.0}) == last_json(b),
    ),
    "excel-multi-sheet": (
        [df.quarterly_xlsx],
        ["quarterly_report.xlsx"],
        "import pandas as pd, json\n"
        "sheets = pd.read_excel('quarterly_report.xlsx', sheet_name=None)\n"
        "print(json.dumps({k: int(v['revenue'].sum()) for k, v in sheets.items()}))\n",
        lambda b: last_json(b) == {"Q1": 300, "Q2": 350, "Q3": 30},
    ),
    "pdf-text": (
        [
            lambda p: df.text_pdf(
                p, [["Contract", "Contact: alice@example.com"], ["bob@example.org"]]
            )
        ],
        ["contract.pdf"],
        "import re, json\nfrom pypdf import PdfReader\n"
        "text = ''.join(p.extract_text() for p in PdfReader('contract.pdf').pages)\n"
        "print(json.dumps(sorted(set(re.findall(r'[\\w.+-]+@[\\w-]+\\.[\\w.]+', text)))))\n",
        lambda b: last_json(b) == ["alice@example.com", "bob@example.org"],
    ),
    "word-headings": (
        [df.report_docx],
        ["report.docx"],
        "import docx, json\n"
        "d = docx.Document('report.docx')\n"
        "print(json.dumps([[p.style.name, p.text] for p in d.paragraphs if p.style.name.startswith('Heading')]))\n",
        lambda b: (
            last_json(b)
            == [
                ["Heading 1", "Introduction"],
                ["Heading 1", "Method"],
                ["Heading 2", "Data"],
                ["Heading 1", "Results"],
            ]
        ),
    ),
    "xml-xpath": (
        [df.config_xml],
        ["config.xml"],
        "from lxml import etree\nimport json\n"
        "tree = etree.parse('config.xml')\n"
        "print(json.dumps(tree.xpath('//database/connection/text()')))\n",
        lambda b: last_json(b) == ["server=db1", "server=db2"],
    ),
    "parquet": (
        [df.events_parquet],
        ["user_events.parquet"],
        "import pandas as pd, json\n"
        "e = pd.read_parquet('user_events.parquet')\n"
        "print(json.dumps({'total_events': len(e), 'unique_users': int(e.user.nunique())}))\n",
        lambda b: last_json(b) == {"total_events": 6, "unique_users": 3},
    ),
    "feather": (
        [df.events_feather],
        ["events.feather"],
        "import pandas as pd, json\n"
        "e = pd.read_feather('events.feather')\n"
        "print(json.dumps(e.event.value_counts().to_dict()))\n",
        lambda b: last_json(b) == {"view": 4, "buy": 2},
    ),
    "hdf5": (
        [df.climate_h5],
        ["climate_data.h5"],
        "import h5py, json\n"
        "with h5py.File('climate_data.h5') as f:\n"
        "    d = f['station/temperature']\n"
        "    print(json.dumps({'temperatures': d[:].tolist(), 'units': d.attrs['units']}))\n",
        lambda b: last_json(b) == {"temperatures": [10.5, 12.0, 13.5], "units": "Celsius"},
    ),
    "netcdf": (
        [df.climate_nc],
        ["climate.nc"],
        "import xarray as xr, json\n"
        "ds = xr.open_dataset('climate.nc')\n"
        "print(json.dumps({'mean': float(ds.temp.mean()), 'units': ds.temp.attrs['units'], 'title': ds.attrs['title']}))\n",
        lambda b: last_json(b) == {"mean": 281.5, "units": "K", "title": "test climate"},
    ),
    "jpeg-exif": (
        [df.photo_jpeg],
        ["photo1.jpg"],
        "from PIL import Image\nfrom PIL.ExifTags import IFD\nimport json\n"
        "exif = Image.open('photo1.jpg').getexif()\n"
        "gps = exif.get_ifd(IFD.GPSInfo)\n"
        "dec = lambda v, ref: (float(v[0]) + float(v[1]) / 60 + float(v[2]) / 3600) * (-1 if ref in 'SW' else 1)\n"
        "print(json.dumps({'lat': round(dec(gps[2], gps[1]), 4), 'lon': round(dec(gps[4], gps[3]), 4),\n"
        "                  'date': exif.get_ifd(IFD.Exif)[0x9003]}))\n",
        lambda b: last_json(b) == {"lat": 37.7749, "lon": -122.4194, "date": "2024:01:15 10:30:00"},
    ),
    "zip-of-csvs": (
        [df.csv_zip],
        ["data_backup.zip"],
        "import zipfile, pandas as pd, json\n"
        "with zipfile.ZipFile('data_backup.zip') as z:\n"
        "    names = sorted(n for n in z.namelist() if n.endswith('.csv'))\n"
        "    rows = sum(len(pd.read_csv(z.open(n))) for n in names)\n"
        "print(json.dumps({'files': names, 'total_rows': rows}))\n",
        lambda b: last_json(b) == {"files": ["data1.csv", "data2.csv"], "total_rows": 4},
    ),
    "yaml": (
        [df.compose_yaml],
        ["docker-compose.yml"],
        "import yaml, json\n"
        "c = yaml.safe_load(open('docker-compose.yml'))\n"
        "env = sorted(k for s in c['services'].values() for k in s.get('environment', {}))\n"
        "print(json.dumps({'env_vars': env, 'services': len(c['services'])}))\n",
        lambda b: last_json(b) == {"env_vars": ["API_KEY", "DB_HOST", "PORT"], "services": 3},
    ),
    "statsmodels-ols": (
        [df.sales_history_csv],
        ["sales_history.csv"],
        "import pandas as pd, statsmodels.api as sm, json\n"
        "d = pd.read_csv('sales_history.csv')\n"
        "m = sm.OLS(d.sales, sm.add_constant(d.ads)).fit()\n"
        "print(json.dumps({'r_squared': round(m.rsquared, 3), 'slope': round(m.params['ads'], 2)}))\n",
        lambda b: (
            last_json(b)["slope"] == pytest.approx(3.0, abs=0.05)
            and last_json(b)["r_squared"] > 0.99
        ),
    ),
}


@pytest.mark.parametrize("task", list(TASKS))
def test_data_task(client: TestClient, tmp_path: Path, task: str) -> None:
    builders, names, code, check = TASKS[task]
    files = [build(tmp_path / name) for build, name in zip(builders, names, strict=True)]
    body = post(client, code, files)
    assert check(body), body["output"]
    assert sorted(body["input_files"]) == sorted(names) or task == "zip-of-csvs"
    assert body["exit_code"] == 0 and not body["timed_out"]


def test_matplotlib_plot_comes_back_as_png(client: TestClient, tmp_path: Path) -> None:
    code = (
        "import pandas as pd, matplotlib.pyplot as plt\n"
        "d = pd.read_csv('employees.csv')\n"
        "d.groupby('department').salary.mean().plot.bar()\n"
        "plt.savefig('salary.png')\nprint('saved')\n"
    )
    body = post(client, code, [df.employees_csv(tmp_path / "employees.csv")])
    [artifact] = body["artifacts"]
    assert artifact["name"] == "salary.png" and artifact["media_type"] == "image/png"
    download = client.get(artifact["url"])
    assert download.status_code == 200
    assert download.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(download.content) == artifact["size"]
