"""Encoding detection on realistic texts, through the full intake (streamed validation too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from files import FileIntake
from files.encoding import detect_encoding

FRENCH = (
    "Le café de la rue Général-Leclerc était fermé. Noël approche, et l'été dernier fut très "
    "chaud à Besançon. Où est la clé ? Ça coûte cher, dit le garçon.\n"
)
GERMAN = "Größe;Straße;Übermäßig\nMüller;Köln;Bäckerei\nFrançois;Zürich;Café\n"
CP1252_TEXT = "Prix : 12 € — « citation » et “guillemets” ‘simples’… Œuvre complète, œuf.\n"  # noqa: RUF001


@pytest.mark.parametrize(
    ("text", "codec", "expected"),
    [
        (FRENCH * 20, "utf-8", "utf-8"),
        (FRENCH * 20, "utf-8-sig", "utf-8-sig"),
        (FRENCH * 20, "utf-16", "utf-16"),
        (FRENCH * 20, "latin-1", "latin-1"),
        (GERMAN * 20, "latin-1", "latin-1"),
        (CP1252_TEXT * 20, "cp1252", "cp1252"),
        ((FRENCH + CP1252_TEXT) * 10, "cp1252", "cp1252"),
        ("Привет, мир! Как дела? Это тестовый текст.\n" * 20, "cp1251", "cp1251"),
    ],
)
def test_detect_encoding(text: str, codec: str, expected: str) -> None:
    data = text.encode(codec)
    assert detect_encoding(data, complete=True).encoding == expected
    assert data.decode(expected) == text.encode(codec).decode(codec)


def test_utf16_without_bom() -> None:
    assert detect_encoding(("hello world, " * 20).encode("utf-16-le")).encoding == "utf-16-le"


@pytest.mark.parametrize(
    ("codec", "expected"),
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8-sig"),
        ("utf-16", "utf-16"),
        ("latin-1", "latin-1"),
        ("cp1252", "cp1252"),
    ],
)
def test_intake_reports_encoding_and_reads_the_csv(
    job_dir: Path, codec: str, expected: str
) -> None:
    note = (
        "5 € \u2013 net" if codec == "cp1252" else "déjà vu"
    )  # the euro sign and en dash exist in CP1252 only
    rows = ["name,city,note"] + [f"Zoë {i},Besançon,{note}" for i in range(30)]
    (job_dir.parent / "src.csv").write_bytes(("\n".join(rows) + "\n").encode(codec))
    intake = FileIntake(job_dir)
    intake.add_path("people.csv", job_dir.parent / "src.csv")
    meta = intake.finish().metadata["people.csv"]
    assert meta["encoding"] == expected
    assert meta["row_count"] == 30 and meta["columns"] == ["name", "city", "note"]
    assert meta["sample_rows"][0]["city"] == "Besançon"


def test_late_non_utf8_byte_is_caught_by_the_streamed_pass(job_dir: Path) -> None:
    head = "id,text\n" + "".join(f"{i},plain ascii row\n" for i in range(8000))  # > 64 KiB
    data = head.encode() + "9999,café\n".encode("latin-1")
    src = job_dir.parent / "late.csv"
    src.write_bytes(data)
    intake = FileIntake(job_dir)
    intake.add_path("late.csv", src)
    meta = intake.finish().metadata["late.csv"]
    assert meta["encoding"] == "latin-1" and "not" in meta["encoding_note"]
    assert meta["row_count"] == 8001
