"""Text encoding detection with deterministic rules where statistics are unreliable.

charset-normalizer alone confuses Latin-1 with CP1250/CP1252 on short Western texts, so:
BOMs first (``utf-8-sig``, ``utf-16``, ``utf-32``), then strict UTF-8, then BOM-less UTF-16
by its NUL pattern, then charset-normalizer; when its guess is a Latin-script code page and the
bytes read as plausible Western text, bytes 0x80-0x9F decide: present (and all defined in
CP1252) -> ``cp1252``, absent -> ``latin-1`` (both decode such text identically).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

SAMPLE_BYTES = 64 * 1024

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CP1252_UNDEFINED = frozenset({0x81, 0x8D, 0x8F, 0x90, 0x9D})
_C1 = frozenset(range(0x80, 0xA0))
_LATIN_CODEPAGES = frozenset(
    [
        "cp1252",
        "latin_1",
        "iso8859_1",
        "iso8859_15",
        "cp1250",
        "iso8859_2",
        "cp1257",
        "iso8859_4",
        "iso8859_10",
        "iso8859_13",
        "iso8859_14",
        "iso8859_16",
        "iso8859_3",
        "iso8859_9",
        "cp1254",
        "cp775",
        "mac_latin2",
        "mac_iceland",
        "mac_roman",
        "mac_turkish",
        "cp437",
        "cp850",
        "cp852",
        "cp858",
        "cp860",
        "cp861",
        "cp863",
        "cp865",
        "cp1258",
        "hp_roman8",
        "cp500",
        "cp037",
        "cp1140",
        "kz1048",
        "ptcp154",
        "ascii",
    ]
)
# CP1252 punctuation at 0x80-0x9F, Latin-1 signs at 0xA0-0xBF, and the two math signs.
_WESTERN_PUNCT = frozenset(
    bytes(range(0x80, 0xA0)).decode("cp1252", errors="ignore")
    + bytes(range(0xA0, 0xC0)).decode("latin-1")
    + "\u00d7\u00f7"
)
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b")


@dataclass(frozen=True)
class EncodingGuess:
    encoding: str  # a Python codec name, e.g. "utf-8", "utf-8-sig", "utf-16", "cp1252"
    confidence: str  # "bom" | "certain" | "likely" | "guess"
    method: str


def _utf8_ok(sample: bytes, complete: bool) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def _utf16_without_bom(sample: bytes) -> str | None:
    if len(sample) < 16:
        return None
    even, odd = sample[0::2], sample[1::2]
    zeros_even, zeros_odd = even.count(0) / len(even), odd.count(0) / len(odd)
    if zeros_odd > 0.4 and zeros_even < 0.05:
        return "utf-16-le"
    if zeros_even > 0.4 and zeros_odd < 0.05:
        return "utf-16-be"
    return None


def _western_plausible(sample: bytes) -> bool:
    text = sample.decode("cp1252", errors="replace")
    high = [c for c in text if ord(c) > 0x7F]
    if not high:
        return True
    good = sum(1 for c in high if c.isalpha() or c in _WESTERN_PUNCT)
    return good / len(high) >= 0.95


def _western_rule(sample: bytes) -> str:
    c1 = {b for b in sample if b in _C1}
    if c1 and not (c1 & _CP1252_UNDEFINED):
        return "cp1252"
    return "latin-1"


def detect_encoding(sample: bytes, *, complete: bool = False) -> EncodingGuess:
    """Guess the encoding of ``sample`` (the head of a file; ``complete`` if it is all of it)."""
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return EncodingGuess(name, "bom", "byte order mark")
    utf16 = _utf16_without_bom(sample)  # before UTF-8: ASCII in UTF-16 is valid UTF-8 too
    if utf16:
        return EncodingGuess(utf16, "likely", "NUL byte pattern")
    if _utf8_ok(sample, complete):
        return EncodingGuess("utf-8", "certain" if complete else "likely", "strict utf-8 decode")
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    guess = best.encoding if best is not None else "latin_1"
    if guess in _LATIN_CODEPAGES and _western_plausible(sample):
        return EncodingGuess(_western_rule(sample), "likely", "western rule (bytes 0x80-0x9f)")
    return EncodingGuess(codecs.lookup(guess).name, "guess", "charset-normalizer")


def looks_binary(sample: bytes, encoding: str | None = None) -> bool:
    """True when ``sample`` is not text: NUL bytes (outside UTF-16/32) or many control chars."""
    if not sample:
        return False
    enc = encoding or detect_encoding(sample).encoding
    if not enc.startswith(("utf-16", "utf-32")) and b"\x00" in sample:
        return True
    try:
        text = codecs.getincrementaldecoder(enc)(errors="replace").decode(sample, final=False)
    except LookupError:
        return True
    if not text:
        return False
    controls = sum(1 for c in text if c < " " and c not in _TEXT_CONTROLS)
    bad = text.count("\ufffd")
    return (controls + bad) / len(text) > 0.05
