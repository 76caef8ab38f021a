"""``geo-r prepare --format exif``: GPS written into real JPEG/PNG/WebP files with Pillow, found in nested
folders, photos without a usable fix listed and skipped."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

from geo_r.data import load_records
from geo_r.data.prepare import PrepareInputError
from geo_r.data.prepare.exif import dms_to_degrees, read_gps
from geo_r.data.prepare.rows import Skip
from prepare_fixtures import convert


def dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    """Decimal degrees as EXIF degrees/minutes/seconds rationals (seconds to 1/10000)."""
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60 * 10000)
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 10000)


def save_photo(path: Path, gps: dict[int, object] | None, fmt: str = "JPEG") -> Path:
    """A small photo at ``path`` whose EXIF GPS IFD holds ``gps`` (None: no EXIF at all)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (16, 12), (30, 120, 200))
    if gps is None:
        img.save(path, format=fmt)
        return path
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestCam"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(gps)
    img.save(path, format=fmt, exif=exif.tobytes())
    return path


def gps_of(lat: float, lon: float) -> dict[int, object]:
    """A GPS IFD for a position, with its hemisphere references."""
    return {
        ExifTags.GPS.GPSLatitudeRef: "N" if lat >= 0 else "S",
        ExifTags.GPS.GPSLatitude: dms(lat),
        ExifTags.GPS.GPSLongitudeRef: "E" if lon >= 0 else "W",
        ExifTags.GPS.GPSLongitude: dms(lon),
    }


def test_dms_conversion() -> None:
    assert dms_to_degrees((IFDRational(33, 1), IFDRational(52, 1), IFDRational(1044, 100))) == pytest.approx(33.8695666, abs=1e-7)
    assert dms_to_degrees((48.0, 51.0, 23.76)) == pytest.approx(48.8566, abs=1e-6)
    assert dms_to_degrees(12.5) == 12.5
    assert dms_to_degrees((IFDRational(1, 0), 0, 0)) is None  # zero denominator: NaN, not a position
    assert dms_to_degrees(("x", 1, 2)) is None and dms_to_degrees(()) is None


def test_photo_folder_with_nested_gps_photos(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    save_photo(root / "2023" / "japan" / "biei.jpg", gps_of(43.5883, 142.4669))
    save_photo(root / "2023" / "brazil" / "rio.JPG", gps_of(-22.9068, -43.1729))  # S and W: negative
    save_photo(root / "2024" / "deep" / "er" / "sydney.webp", gps_of(-33.8688, 151.2093), fmt="WEBP")
    save_photo(root / "2024" / "reykjavik.png", gps_of(64.1466, -21.9426), fmt="PNG")
    save_photo(root / "no_gps.jpg", None)
    save_photo(root / "placeholder.jpg", gps_of(0.0, 0.0))
    save_photo(root / "void.jpg", {**gps_of(10, 10), ExifTags.GPS.GPSStatus: "V"})
    save_photo(root / "no_ref.jpg", {ExifTags.GPS.GPSLatitude: dms(10), ExifTags.GPS.GPSLongitude: dms(10)})
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (root / "notes.txt").write_text("not a photo")
    (root / ".thumbs").mkdir()
    save_photo(root / ".thumbs" / "hidden.jpg", gps_of(1, 1))

    summary, records = convert("exif", tmp_path / "mine.jsonl", input=root)
    got = {r["id"]: (r["lat"], r["lon"], r.get("city")) for r in records}
    assert set(got) == {"2023/brazil/rio.JPG", "2023/japan/biei.jpg", "2024/deep/er/sydney.webp", "2024/reykjavik.png"}
    assert got["2023/brazil/rio.JPG"][:2] == pytest.approx((-22.9068, -43.1729), abs=1e-6)
    assert got["2023/japan/biei.jpg"][:2] == pytest.approx((43.5883, 142.4669), abs=1e-6)
    assert got["2024/deep/er/sydney.webp"][2] == "Sydney" and got["2024/reykjavik.png"][2] == "Reykjavik"
    # stable order: sorted names, a folder's own files before its sub-folders
    assert [r["id"] for r in records] == [
        "2023/brazil/rio.JPG", "2023/japan/biei.jpg", "2024/reykjavik.png", "2024/deep/er/sydney.webp",
    ]  # fmt: skip
    assert summary.skipped == {"no_gps": 4, "unreadable_image": 1, "unsupported_image": 1}
    listed = (tmp_path / "mine.skipped.tsv").read_text(encoding="utf-8")
    for name in ("no_gps.jpg", "placeholder.jpg", "void.jpg", "no_ref.jpg", "broken.jpg", "IMG_0001.HEIC"):
        assert name in listed
    assert "(0, 0), the placeholder" in listed and "status is V" in listed
    assert any("1 file(s) that are not photos" in note for note in summary.notes)
    # image paths are relative to the photo folder, which is the default image folder
    loaded, _ = load_records(str(tmp_path / "mine.jsonl"), str(root))
    assert len(loaded) == 4 and all(Path(r.images[0]).is_file() for r in loaded)


def test_images_folder_above_the_input(tmp_path: Path) -> None:
    save_photo(tmp_path / "all" / "trip" / "a.jpg", gps_of(48.8566, 2.3522))
    summary, records = convert("exif", tmp_path / "o.jsonl", input=tmp_path / "all" / "trip", images=tmp_path / "all")
    assert records[0]["image"] == "trip/a.jpg" and records[0]["city"] == "Paris"
    with pytest.raises(PrepareInputError, match="is not inside --images"):
        convert("exif", tmp_path / "p.jsonl", input=tmp_path / "all", images=tmp_path / "all" / "trip")


def test_read_gps_reports_out_of_range_values(tmp_path: Path) -> None:
    path = save_photo(tmp_path / "x.jpg", {**gps_of(10, 10), ExifTags.GPS.GPSLatitude: (IFDRational(95, 1), 0, 0)})
    result = read_gps(path)
    assert isinstance(result, Skip) and result.reason == "bad_coordinates" and "out of range" in result.detail


def test_an_empty_folder_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    summary, records = convert("exif", tmp_path / "o.jsonl", input=tmp_path / "empty")
    assert summary.rows_read == 0 and records == [] and summary.skipped_file is None
