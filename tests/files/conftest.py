"""Fixtures that generate a real file of every supported type with the dev-venv libraries."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from files.worker import shutdown_workers

DOC_TEXT = "Quarterly minutes: revenue grew in every region."


def _pdf(path: Path) -> None:
    """A two-page PDF written by hand: text on both pages and a ruled 3x3 table on page 1."""
    grid = []
    for i in range(4):  # horizontal and vertical rules of a 3x3 table
        y = 600 - 30 * i
        x = 72 + 120 * i
        grid.append(f"72 {y} m 432 {y} l S")
        grid.append(f"{x} 510 m {x} 600 l S")
    cells = []
    for r, row in enumerate([("Region", "Q1", "Q2"), ("North", "10", "12"), ("South", "7", "9")]):
        for c, text in enumerate(row):
            cells.append(f"BT /F1 11 Tf {80 + 120 * c} {580 - 30 * r} Td ({text}) Tj ET")
    page1 = "\n".join(
        ["BT /F1 18 Tf 72 720 Td (Quarterly Report 2024) Tj ET", "1 w", *grid, *cells]
    )
    page2 = "BT /F1 12 Tf 72 720 Td (Page two: appendix with notes.) Tj ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R 5 0 R] /Count 2 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 7 0 R >> >> >>",
        f"<< /Length {len(page1)} >>\nstream\n{page1}\nendstream",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 6 0 R "
        "/Resources << /Font << /F1 7 0 R >> >> >>",
        f"<< /Length {len(page2)} >>\nstream\n{page2}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        "<< /Title (Quarterly Report) /Author (Finance Team) >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{n} 0 obj\n{body}\nendobj\n".encode("latin-1"))
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 8 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n".encode()
    )
    path.write_bytes(out.getvalue())


def _doc(path: Path) -> None:
    """A real OLE2 container (xlwt's writer) whose stream is renamed WordDocument.

    The stream holds UTF-16 text, not a genuine Word FIB: enough for the container checks
    and the best-effort text scrape that is all we promise for legacy .doc.
    """
    from xlwt.CompoundDoc import XlsDoc

    buf = io.BytesIO()
    XlsDoc().save(buf, (DOC_TEXT.encode("utf-16-le") * 40).ljust(4096, b"\x00"))
    data = bytearray(buf.getvalue())
    old = "Workbook\x00".encode("utf-16-le")
    at = data.index(old)
    new = "WordDocument\x00".encode("utf-16-le")
    data[at : at + 64] = new.ljust(64, b"\x00")
    data[at + 64 : at + 66] = len(new).to_bytes(2, "little")
    path.write_bytes(bytes(data))


def _jpeg_with_exif(path: Path) -> None:
    from PIL import ExifTags, Image, TiffImagePlugin

    img = Image.new("RGB", (64, 48), (200, 30, 30))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestCam"
    exif[ExifTags.Base.Model] = "X100"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2024:01:15 10:30:00"
    r = TiffImagePlugin.IFDRational
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (r(37, 1), r(46, 1), r(2964, 100))  # 37.7749
    gps[ExifTags.GPS.GPSLongitudeRef] = "W"
    gps[ExifTags.GPS.GPSLongitude] = (r(122, 1), r(25, 1), r(984, 100))  # -122.4194
    img.save(path, "JPEG", exif=exif)


def make_samples(root: Path) -> dict[str, Path]:
    import h5py
    import netCDF4
    import numpy as np
    import openpyxl
    import pandas as pd
    import py7zr
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq
    import xlwt
    from docx import Document
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    p: dict[str, Path] = {}

    def path(name: str) -> Path:
        p[name] = root / name
        return p[name]

    sales = pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=40, freq="D").strftime("%Y-%m-%d"),
            "region": ["North", "South", "East", "West"] * 10,
            "amount": np.round(np.linspace(10, 400, 40), 2),
            "units": np.arange(40),
            "note": ["plain"] * 39 + ['multi-line\n"quoted", with comma'],
        }
    )
    sales.to_csv(path("sales.csv"), index=False)
    sales.to_csv(path("sales.tsv"), index=False, sep="\t")
    path("notes.txt").write_text("Café notes\nline two\nline three\n", encoding="utf-8")
    path("readme.md").write_text(
        "# Title\n\nIntro text.\n\n## Usage\n\nRun it.\n", encoding="utf-8"
    )
    path("app.log").write_text(
        "".join(f"2024-01-01 10:00:{i:02d} INFO request {i}\n" for i in range(30)), encoding="utf-8"
    )
    path("letter.rtf").write_text(
        r"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0 Arial;}}\f0\fs24 Hello \b RTF\b0  world.\par}",
        encoding="ascii",
    )
    path("drawing.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50" viewBox="0 0 100 50">'
        '<rect x="1" y="1" width="10" height="10"/><circle cx="30" cy="20" r="5"/></svg>',
        encoding="utf-8",
    )
    path("config.yaml").write_text(
        "service:\n  name: api\n  port: 8080\nreplicas: 3\nfeatures: [a, b]\n", encoding="utf-8"
    )
    path("compose.yml").write_text("- one\n- two\n- three\n", encoding="utf-8")
    path("records.json").write_text(
        json.dumps(
            [{"id": i, "name": f"n{i}", "tags": ["x"], "meta": {"ok": True}} for i in range(12)]
        ),
        encoding="utf-8",
    )
    path("settings.json").write_text(
        json.dumps({"debug": False, "db": {"host": "h", "port": 5432}})
    )
    path("catalog.xml").write_text(
        '<?xml version="1.0"?><catalog xmlns="urn:books" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        + "".join(
            f"<book id='{i}'><dc:title>T{i}</dc:title><price>{i}</price></book>" for i in range(7)
        )
        + "</catalog>",
        encoding="utf-8",
    )

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Sales"
    ws.append(["region", "amount", "when"])
    for i in range(25):
        ws.append([f"R{i % 3}", i * 1.5, f"2024-01-{i + 1:02d}"])
    ws2 = wb.create_sheet("Staff")
    ws2.append(["name", "age"])
    ws2.append(["Ann", 31])
    ws2.append(["Bob", 45])
    wb.save(path("book.xlsx"))
    wb.save(path("macro.xlsm"))

    xb = xlwt.Workbook()
    sh = xb.add_sheet("Legacy")
    for c, h in enumerate(["id", "city", "score"]):
        sh.write(0, c, h)
    for r in range(1, 11):
        sh.write(r, 0, r)
        sh.write(r, 1, f"city{r}")
        sh.write(r, 2, r * 0.5)
    xb.save(str(path("old.xls")))

    d = Document()
    d.add_heading("Annual Report", level=0)
    d.add_heading("Summary", level=1)
    d.add_paragraph("Revenue grew by 12 percent.")
    d.add_heading("Details", level=2)
    d.add_paragraph("Costs were flat.")
    t = d.add_table(rows=3, cols=2)
    for r, (a, b) in enumerate([("Item", "Value"), ("Revenue", "120"), ("Cost", "80")]):
        t.cell(r, 0).text, t.cell(r, 1).text = a, b
    d.save(str(path("report.docx")))
    _doc(path("legacy.doc"))
    _pdf(path("report.pdf"))

    table = pa.table({"id": list(range(1000)), "value": [i * 0.5 for i in range(1000)],
                      "label": [f"l{i % 7}" for i in range(1000)]})  # fmt: skip
    pq.write_table(table, path("events.parquet"), row_group_size=400)
    feather.write_feather(table, path("frame.feather"))

    with h5py.File(path("climate.h5"), "w") as h5:
        h5.attrs["source"] = "test"
        g = h5.create_group("sensors")
        g.attrs["site"] = "alpha"
        ds = g.create_dataset("temperature", data=np.zeros((10, 4), dtype="f4"))
        ds.attrs["units"] = "degC"
        h5.create_dataset("ids", data=np.arange(5))
    with netCDF4.Dataset(path("ocean.nc"), "w") as nc:
        nc.title = "ocean test"
        nc.createDimension("time", None)
        nc.createDimension("lat", 3)
        v = nc.createVariable("sst", "f4", ("time", "lat"))
        v.units = "K"
        v[0:2, :] = np.ones((2, 3))
        nc.createVariable("lat", "f8", ("lat",))[:] = [1.0, 2.0, 3.0]

    _jpeg_with_exif(path("photo.jpg"))
    Image.new("RGBA", (20, 10), (0, 0, 255, 128)).save(path("logo.png"))
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(path("anim.gif"), save_all=True, append_images=frames[1:])
    Image.new("RGB", (5, 7)).save(path("pic.bmp"))
    Image.new("L", (9, 9)).save(path("scan.tiff"))

    with zipfile.ZipFile(path("data_backup.zip"), "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data1.csv", "a,b\n1,2\n3,4\n")
        zf.writestr("data2.csv", "a,b\n5,6\n")
        zf.writestr("docs/notes.txt", "inside the zip\n")
        zf.writestr("tool.exe", b"MZ\x90\x00binary")
        zf.writestr("__MACOSX/._data1.csv", b"junk")
    with tarfile.open(path("bundle.tar.gz"), "w:gz") as tf:
        for name, data in (("part/a.json", b'{"k": 1}'), ("part/b.txt", b"hello tar\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with tarfile.open(path("plain.tar"), "w") as tf:
        data = b"x,y\n1,2\n"
        info = tarfile.TarInfo("xy.csv")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    path("metrics.csv.gz").write_bytes(gzip.compress(b"metric,value\ncpu,0.5\nmem,0.7\n"))
    path("server.log.bz2").write_bytes(bz2.compress(b"boot ok\nready\n"))
    with py7zr.SevenZipFile(path("pack.7z"), "w") as sz:
        sz.writestr("alpha,beta\n1,2\n", "inner.csv")
        sz.writestr("seven zip text\n", "readme.txt")

    path("table.dat").write_text("1.0 2.0 3.0\n4.0 5.0 6.0\n7.0 8.0 9.0\n", encoding="ascii")
    path("blob.dat").write_bytes(bytes(range(256)) * 8)
    return p


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="session", autouse=True)
def _stop_workers() -> Iterator[None]:
    yield
    shutdown_workers()


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    """``tmp_path/job/input``: the intake's folder; tests check nothing appears beside it."""
    d = tmp_path / "job" / "input"
    d.mkdir(parents=True)
    return d


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}
