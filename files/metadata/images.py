"""Images: format, size, mode, EXIF with GPS in decimal degrees. Pixels are never decoded,
and an image above the pixel limit is refused as a likely decompression bomb."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from files.metadata.common import json_safe

MAX_IMAGE_PIXELS = 89_478_485  # Pillow's default, made a hard limit here
_BASE_TAGS = ("Make", "Model", "DateTime", "Software", "Orientation", "Artist", "ImageDescription")
_EXIF_TAGS = ("DateTimeOriginal", "DateTimeDigitized", "ExposureTime", "FNumber",
              "ISOSpeedRatings", "FocalLength", "LensModel")  # fmt: skip


def _degrees(value: Any, ref: Any) -> float | None:
    try:
        d, m, s = (float(x) for x in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    deg = d + m / 60 + s / 3600
    if str(ref).upper().startswith(("S", "W")):
        deg = -deg
    return round(deg, 7)


def _gps(gps: Any) -> dict[str, Any]:
    from PIL.ExifTags import GPSTAGS

    named = {GPSTAGS.get(k, str(k)): v for k, v in gps.items()}
    out: dict[str, Any] = {}
    lat = _degrees(named.get("GPSLatitude"), named.get("GPSLatitudeRef", "N"))
    lon = _degrees(named.get("GPSLongitude"), named.get("GPSLongitudeRef", "E"))
    if lat is not None and lon is not None:
        out.update(latitude=lat, longitude=lon)
    if "GPSAltitude" in named:
        try:
            alt = float(named["GPSAltitude"])
            out["altitude_m"] = -alt if named.get("GPSAltitudeRef") in (1, b"\x01") else alt
        except (TypeError, ValueError, ZeroDivisionError):
            pass
    if "GPSDateStamp" in named:
        out["date_stamp"] = json_safe(named["GPSDateStamp"])
    return out


def image_metadata(path: Path) -> dict[str, Any]:
    from PIL import ExifTags, Image

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            return {"error": f"image refused as a likely decompression bomb: {exc}"}
    with img:
        meta: dict[str, Any] = {
            "format": img.format,
            "width": img.width,
            "height": img.height,
            "mode": img.mode,
            "frames": getattr(img, "n_frames", 1),
        }
        if "dpi" in img.info:
            meta["dpi"] = json_safe(img.info["dpi"])
        exif = img.getexif()
        if exif:
            tags = {ExifTags.TAGS.get(k, str(k)): v for k, v in exif.items()}
            fields = {k: json_safe(tags[k]) for k in _BASE_TAGS if k in tags}
            sub = exif.get_ifd(ExifTags.IFD.Exif)
            named = {ExifTags.TAGS.get(k, str(k)): v for k, v in sub.items()}
            fields.update({k: json_safe(named[k]) for k in _EXIF_TAGS if k in named})
            meta["exif"] = fields
            if "DateTimeOriginal" in fields:
                meta["datetime_original"] = fields["DateTimeOriginal"]
            gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
            if gps:
                meta["gps"] = _gps(gps)
        return meta
