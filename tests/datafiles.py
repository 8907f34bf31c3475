"""Real files of the data types scripts work on, generated on demand with known contents."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

EMPLOYEES = [
    ("Ann", "Sales", 50000),
    ("Bob", "Sales", 70000),
    ("Cid", "IT", 90000),
    ("Dee", "IT", 110000),
    ("Eve", "HR", 60000),
]


def employees_csv(path: Path) -> Path:
    lines = ["name,department,salary"] + [f"{n},{d},{s}" for n, d, s in EMPLOYEES]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def quarterly_xlsx(path: Path) -> Path:
    import pandas as pd

    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for quarter, revenue in (("Q1", [100, 200]), ("Q2", [300, 50]), ("Q3", [10, 20])):
            pd.DataFrame({"item": ["a", "b"], "revenue": revenue}).to_excel(
                writer, sheet_name=quarter, index=False
            )
    return path


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def text_pdf(path: Path, pages: list[list[str]]) -> Path:
    """A minimal valid PDF (Helvetica text, one content stream per page) written by hand."""
    objects: list[bytes] = []
    n_pages = len(pages)
    font_id = 3 + 2 * n_pages
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, lines in enumerate(pages):
        content_id = 4 + 2 * i
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        for line in lines:
            ops.append(f"({_pdf_escape(line)}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode()
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    path.write_bytes(out.getvalue())
    return path


def report_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Introduction", level=1)
    document.add_paragraph("Why we did it.")
    document.add_heading("Method", level=1)
    document.add_heading("Data", level=2)
    document.add_paragraph("Where it came from.")
    document.add_heading("Results", level=1)
    document.save(str(path))
    return path


def config_xml(path: Path) -> Path:
    path.write_text(
        '<?xml version="1.0"?>\n<config>\n'
        '  <database name="a"><connection>server=db1</connection></database>\n'
        '  <database name="b"><connection>server=db2</connection></database>\n'
        "  <cache><connection>server=cache1</connection></cache>\n"
        "</config>\n",
        encoding="utf-8",
    )
    return path


def events_frame():  # type: ignore[no-untyped-def]
    import pandas as pd

    return pd.DataFrame(
        {"user": [1, 2, 1, 3, 2, 1], "event": ["view", "view", "buy", "view", "buy", "view"]}
    )


def events_parquet(path: Path) -> Path:
    events_frame().to_parquet(path)
    return path


def events_feather(path: Path) -> Path:
    events_frame().to_feather(path)
    return path


def climate_h5(path: Path) -> Path:
    import h5py
    import numpy as np

    with h5py.File(path, "w") as f:
        group = f.create_group("station")
        data = group.create_dataset("temperature", data=np.array([10.5, 12.0, 13.5]))
        data.attrs["units"] = "Celsius"
    return path


def climate_nc(path: Path) -> Path:
    import netCDF4
    import numpy as np

    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", 4)
        var = ds.createVariable("temp", "f4", ("time",))
        var.units = "K"
        var[:] = np.array([280.0, 281.0, 282.0, 283.0], dtype="f4")
        ds.title = "test climate"
    return path


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes_full = (value - degrees) * 60
    minutes = int(minutes_full)
    return (float(degrees), float(minutes), round((minutes_full - minutes) * 60, 4))


def photo_jpeg(path: Path, lat: float = 37.7749, lon: float = -122.4194) -> Path:
    from PIL import Image
    from PIL.ExifTags import IFD

    image = Image.new("RGB", (32, 24), (200, 100, 50))
    exif = Image.Exif()
    exif[0x0110] = "TestCam"  # Model
    exif.get_ifd(IFD.Exif)[0x9003] = "2024:01:15 10:30:00"  # DateTimeOriginal
    gps = exif.get_ifd(IFD.GPSInfo)
    gps[1] = "N" if lat >= 0 else "S"
    gps[2] = _dms(abs(lat))
    gps[3] = "E" if lon >= 0 else "W"
    gps[4] = _dms(abs(lon))
    image.save(path, "JPEG", exif=exif)
    return path


def csv_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data1.csv", "a,b\n1,2\n3,4\n5,6\n")
        archive.writestr("data2.csv", "a,b\n7,8\n")
    return path


def compose_yaml(path: Path) -> Path:
    path.write_text(
        "services:\n"
        "  web:\n    environment:\n      DB_HOST: db\n      PORT: '80'\n"
        "  db:\n    environment:\n      API_KEY: x\n"
        "  cache:\n    image: redis\n",
        encoding="utf-8",
    )
    return path


def sales_history_csv(path: Path) -> Path:
    # y = 3x + 2 plus a small deterministic wiggle: R^2 close to 1
    rows = ["ads,sales"] + [f"{x},{3 * x + 2 + (0.5 if x % 2 else -0.5)}" for x in range(1, 21)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path
