"""``geo-r prepare`` readers, one per format, on small files in each dataset's real layout: coordinates read
the right way round, chains from the source or derived offline, answers in the contract, bad rows counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geo_r.data import load_records
from geo_r.data.prepare import PrepareInputError, PrepareOptions, prepare
from geo_r.geo import parse_prediction, reverse_geocode
from geo_r.prompts import DEFAULT_QUESTION, render_answer
from geo_r.rewards.format import follows_contract
from prepare_fixtures import (
    IM2GPS3K_HEADER,
    MP16PRO_HEADER,
    OSV5M_HEADER,
    answer_of,
    convert,
    make_row,
    read_jsonl,
    touch_images,
    write_table,
)


def by_id(records: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in records}


# ------------------------------------------------------------------------------------------------ MP16-Pro


def _mp16pro(tmp_path: Path) -> Path:
    h = MP16PRO_HEADER
    rows = [
        # Nominatim-style keys in the local language, a lower-case code: the country is shown in English
        make_row(h, IMG_ID="50/a4/1.jpg", AUTHOR="12@N01", LAT="43.5883", LON="142.4669", city="美瑛町",
                 county="上川郡", state="Hokkaido", country="日本", country_code="jp", continent="Asia"),
        # no state: region falls back to the `region` key; Namibia's code "na" must survive
        make_row(h, IMG_ID="50/a4/2.jpg", AUTHOR="13@N01", LAT="-22.5609", LON="17.0658", city="Windhoek",
                 region="Khomas Region", country="Namibia", country_code="na"),
        # no country at all (G3 drops these): derived offline, same country as the point
        make_row(h, IMG_ID="50/a4/3.jpg", AUTHOR="14@N01", LAT="48.8566", LON="2.3522"),
        # a bad latitude and a missing image: counted, not fatal
        make_row(h, IMG_ID="50/a4/4.jpg", AUTHOR="15@N01", LAT="north", LON="2.35", country="France"),
        make_row(h, IMG_ID="50/a4/5.jpg", AUTHOR="16@N01", LAT="10", LON="10", country="Nigeria"),
    ]  # fmt: skip
    return write_table(tmp_path / "MP16_Pro_places365.csv", h, rows)


def test_mp16pro_chains_from_source_and_flattened_image_names(tmp_path: Path) -> None:
    csv_path = _mp16pro(tmp_path)
    images = tmp_path / "imgs"
    touch_images(images, ["50/a4/1.jpg", "50_a4_2.jpg", "50/a4/3.jpg", "50/a4/4.jpg"])  # 2 stored flattened
    summary, records = convert("mp16pro", tmp_path / "out.jsonl", input=csv_path, images=images)
    assert summary.rows_read == 5 and summary.written == 3
    assert summary.skipped == {"bad_coordinates": 1, "image_not_found": 1}
    assert summary.image_lookups["flattened"] == 1
    r = by_id(records)
    japan = r["50/a4/1.jpg"]
    assert (japan["lat"], japan["lon"]) == (43.5883, 142.4669)
    assert (japan["country"], japan["country_code"], japan["region"], japan["city"]) == ("Japan", "JP", "Hokkaido", "美瑛町")
    assert japan["author"] == "12@N01"
    assert answer_of(japan) == render_answer("Japan", "Hokkaido", "美瑛町", 43.5883, 142.4669)
    namibia = r["50/a4/2.jpg"]
    assert namibia["image"] == "50_a4_2.jpg"
    assert (namibia["country_code"], namibia["country"], namibia["region"]) == ("NA", "Namibia", "Khomas Region")
    paris = r["50/a4/3.jpg"]
    assert (paris["country"], paris["country_code"], paris["region"], paris["city"]) == (
        "France", "FR", "Ile-de-France", "Paris",
    )  # fmt: skip
    assert summary.chains.from_source == 2 and summary.chains.completed == 1
    assert summary.countries == {"JP": 1, "NA": 1, "FR": 1}
    assert all(follows_contract(answer_of(x)) for x in records)  # the format reward's strict check
    # the output is the project's data contract: it loads, images included, with the SFT target and question
    loaded, report = load_records(str(tmp_path / "out.jsonl"), str(images))
    assert [x.id for x in loaded] == ["50/a4/1.jpg", "50/a4/2.jpg", "50/a4/3.jpg"]
    assert [x.author for x in loaded] == ["12@N01", "13@N01", "14@N01"]  # the record's photographer
    assert loaded[0].question == "<image>" + DEFAULT_QUESTION
    assert parse_prediction(loaded[0].solution).city == "美瑛町"


# ------------------------------------------------------------------------------------------------ OSV-5M


def test_osv5m_codes_namibia_float_ids_and_shard_folders(tmp_path: Path) -> None:
    h = OSV5M_HEADER
    rows = [
        make_row(h, id="1001", latitude="-22.5609", longitude="17.0658", country="NA", region="Khomas",
                 sub_region="", city="Windhoek", creator_username="alice", drive_side="0"),
        make_row(h, id="1002.0", latitude="-22.95", longitude="14.5", country="NMB", region="Erongo",
                 city="Walvis Bay"),
        make_row(h, id="1003", latitude="35.6762", longitude="139.6503", country="JP", region="Tokyo", city="Tokyo"),
        make_row(h, id="1004", latitude="", longitude="139.6503", country="JP"),
        # "Nan" is a Thai city and province; "nan" is what str(float("nan")) writes for a missing value
        make_row(h, id="1005", latitude="18.7756", longitude="100.7730", country="TH", region="Nan", city="nan"),
    ]  # fmt: skip
    csv_path = write_table(tmp_path / "train.csv", h, rows)
    images = tmp_path / "images" / "train"
    touch_images(images, ["00/1001.jpg", "00/1002.jpg", "01/1003.jpg", "01/1005.jpg"])  # unzipped shards

    # OSV-5M's own extraction leaves images/train/00/<id>.jpg: found by file name with no extra option
    summary, records = convert("osv5m", tmp_path / "b.jsonl", input=csv_path, images=images, keep_columns=("drive_side",))
    assert summary.written == 4 and summary.image_lookups["searched"] == 4
    assert summary.n_duplicate_names == 0
    r = by_id(records)
    assert r["1001"]["image"] == "00/1001.jpg" and r["1002"]["image"] == "00/1002.jpg"
    assert (r["1001"]["country_code"], r["1001"]["country"], r["1001"]["region"], r["1001"]["city"]) == (
        "NA", "Namibia", "Khomas", "Windhoek",
    )  # fmt: skip
    assert r["1002"]["country_code"] == "NA"  # OSV-5M's "NMB" spelling
    assert r["1001"]["author"] == "alice" and r["1001"]["drive_side"] == "0" and "drive_side" not in r["1003"]
    assert (r["1003"]["lat"], r["1003"]["lon"]) == (35.6762, 139.6503)
    nan = r["1005"]
    assert nan["region"] == "Nan" and nan["city"] == reverse_geocode(18.7756, 100.7730)[0].city  # city derived
    assert summary.chains.from_source == 3 and summary.chains.completed == 1

    # opting out looks only where the row says, and the skip says how to search
    summary, records = convert("osv5m", tmp_path / "a.jsonl", input=csv_path, images=images, search_images=False)
    assert summary.written == 0 and summary.skipped == {"image_not_found": 4, "missing_coordinates": 1}
    assert "without --no_search_images" in summary.examples["image_not_found"][0]


def test_osv5m_cli_on_the_extracted_layout_and_duplicate_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from geo_r.cli import main

    rows = [make_row(OSV5M_HEADER, id=str(1000 + i), latitude="48.85", longitude="2.35", country="FR") for i in range(6)]
    csv_path = write_table(tmp_path / "test.csv", OSV5M_HEADER, rows)
    images = tmp_path / "images" / "test"
    touch_images(images, [f"{i // 3:02d}/{1000 + i}.jpg" for i in range(6)])  # test/00.zip, 01.zip unzipped in place
    out = tmp_path / "test.jsonl"
    args = ["prepare", "--format", "osv5m", "--input", str(csv_path), "--images", str(images), "--out", str(out),
            "--no_progress", "--summary_json", str(tmp_path / "s.json")]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Rows: 6 read, 6 written, 0 skipped" in printed and "Duplicate" not in printed
    assert [r["image"] for r in read_jsonl(out)] == [f"{i // 3:02d}/{1000 + i}.jpg" for i in range(6)]

    # the same file name in two shard folders: which one a row means is unknowable, so it is reported and skipped
    touch_images(images, ["01/1000.jpg"])
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Rows: 6 read, 5 written, 1 skipped (image_not_found 1)" in printed
    assert "Duplicate file names: 1 name(s) found in more than one folder" in printed
    assert "  1000.jpg: 00/1000.jpg, 01/1000.jpg" in printed
    assert "1000.jpg not in " in printed and "(several files have its name: 00/1000.jpg, 01/1000.jpg)" in printed
    saved = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert saved["duplicate_names"] == 1 and saved["duplicate_name_examples"] == {"1000.jpg": ["00/1000.jpg", "01/1000.jpg"]}

    # --no_search_images: only images/test/<id>.jpg is looked at
    assert main([*args, "--no_search_images"]) == 1
    assert "0 written, 6 skipped (image_not_found 6)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("fmt", "layout"),
    [("im2gps3k", "im2gps3ktest/{name}"), ("yfcc4k", "yfcc4k/{name}"), ("mp16pro", "mp16_shard_03/{flat}")],
)
def test_documented_layouts_under_a_parent_folder(tmp_path: Path, fmt: str, layout: str) -> None:
    """--images may name the folder the download unzipped into, or the folder above it (Im2GPS3k's and YFCC4k's
    zips unzip into im2gps3ktest/ and yfcc4k/; MP16-Pro's tar shards hold flattened names)."""
    if fmt == "mp16pro":
        rows = [make_row(MP16PRO_HEADER, IMG_ID="a5/d4/77.jpg", LAT="48.85", LON="2.35", country="France",
                         country_code="fr")]  # fmt: skip
        csv_path = write_table(tmp_path / "MP16_Pro_places365.csv", MP16PRO_HEADER, rows)
    else:
        csv_path = write_table(tmp_path / "meta.csv", ["IMG_ID", "LAT", "LON"], [["77.jpg", 48.85, 2.35]])
    root = tmp_path / "downloads"
    written = layout.format(name="77.jpg", flat="a5_d4_77.jpg")
    touch_images(root, [written])
    summary, records = convert(fmt, tmp_path / "out.jsonl", input=csv_path, images=root)
    assert summary.written == 1 and records[0]["image"] == written


# ------------------------------------------------------------------------------------------------ Im2GPS3k

PLACES = [("a.jpg", 48.8566, 2.3522), ("b.jpg", 37.7749, -122.4194), ("c.jpg", 35.6762, 139.6503),
          ("d.jpg", -33.8688, 151.2093), ("e.jpg", -22.9068, -43.1729)]  # fmt: skip


def _im2gps3k(tmp_path: Path, old_header: bool) -> Path:
    header = list(IM2GPS3K_HEADER)
    if old_header:  # the pre-2020 file: headers LON, LAT over latitude-first values
        header[2], header[3] = "LON", "LAT"
    rows = [[name, f"u{i}", lat, lon, 1, 5, 100, 0.1, 0.2, 0.7] for i, (name, lat, lon) in enumerate(PLACES)]
    return write_table(tmp_path / "im2gps3k_places365.csv", header, rows)


@pytest.mark.parametrize("old_header", [False, True])
def test_im2gps3k_reads_both_header_versions_right(tmp_path: Path, old_header: bool) -> None:
    images = tmp_path / "im2gps3ktest"
    touch_images(images, [p[0] for p in PLACES])
    summary, records = convert("im2gps3k", tmp_path / "out.jsonl", input=_im2gps3k(tmp_path, old_header), images=images)
    assert summary.written == len(PLACES) and not summary.skipped
    assert [(r["image"], r["lat"], r["lon"]) for r in records] == PLACES
    assert [r["author"] for r in records] == [f"u{i}" for i in range(len(PLACES))]  # the AUTHOR column
    assert by_id(records)["b.jpg"]["region"] == "California" and by_id(records)["c.jpg"]["country"] == "Japan"
    order_note = " ".join(summary.notes)
    if old_header:
        assert "swapped" in order_note and "3 of 5" in order_note  # 3 "latitudes" beyond +-90
    else:
        assert "as labelled" in order_note
    assert summary.chains.completed == len(PLACES)  # no names in the source: all derived
    parsed = parse_prediction(answer_of(records[0]))
    assert (parsed.lat, parsed.lon) == (48.8566, 2.3522)


def test_coordinate_order_flag_overrides_detection(tmp_path: Path) -> None:
    csv_path = _im2gps3k(tmp_path, old_header=True)
    summary, records = convert("im2gps3k", tmp_path / "out.jsonl", input=csv_path, coordinate_order="lat_lon")
    # read as labelled: "latitudes" beyond 90 are bad rows, the others come out swapped
    assert summary.skipped == {"bad_coordinates": 3}
    assert "latitude (column LAT)" in summary.examples["bad_coordinates"][0]
    assert {(r["lat"], r["lon"]) for r in records} == {(2.3522, 48.8566), (-43.1729, -22.9068)}


# ------------------------------------------------------------------------------------------------ YFCC4k


def _raw_yfcc_row(n_fields: int, photo_id: str, lat: str, lon: str, user: str) -> list[str]:
    """A raw YFCC100M row. 23-field form: 0 id, 1 user NSID, 6 title, 10 longitude, 11 latitude, 21 extension;
    the 25-field form puts a line number first and a hash after the id (field k >= 1 moves to k + 2)."""
    values = {0: photo_id, 1: user, 6: "Eiffel+tower", 10: lon, 11: lat, 21: "jpg"}  # lon BEFORE lat
    fields = [""] * n_fields
    for k, v in values.items():
        fields[k if n_fields == 23 else (1 if k == 0 else k + 2)] = v
    if n_fields == 25:
        fields[0], fields[2] = "17", "d41d8cd98f00b204e9800998ecf8427e"
    return fields


@pytest.mark.parametrize("n_fields", [25, 23])
def test_yfcc4k_raw_rows_are_lon_first(tmp_path: Path, n_fields: int) -> None:
    rows = [
        _raw_yfcc_row(n_fields, "6985418911", "48.858222", "2.2945", "35468159852@N01"),
        _raw_yfcc_row(n_fields, "5111", "-33.856", "151.215", "12@N02"),
        _raw_yfcc_row(n_fields, "5112", "", "", "12@N02"),  # a photo without a geotag
    ]
    path = write_table(tmp_path / "yfcc4k.txt", None, rows, delimiter="\t")
    summary, records = convert("yfcc4k", tmp_path / "out.jsonl", input=path)
    assert summary.written == 2 and summary.skipped == {"missing_coordinates": 1}
    eiffel = by_id(records)["6985418911"]
    assert (eiffel["lat"], eiffel["lon"]) == (48.858222, 2.2945)
    assert eiffel["image"] == "6985418911.jpg" and eiffel["author"] == "35468159852@N01"
    assert eiffel["country_code"] == "FR"
    assert any(f"{n_fields} tab-separated fields" in note for note in summary.notes)


def test_yfcc4k_places365_csv_form(tmp_path: Path) -> None:
    path = write_table(tmp_path / "yfcc4k_places365.csv", ["IMG_ID", "LAT", "LON", "S3_Label"],
                       [["123_abc.jpg", 51.5074, -0.1278, 1]])  # fmt: skip
    summary, records = convert("yfcc4k", tmp_path / "out.jsonl", input=path)
    assert summary.written == 1
    assert (records[0]["lat"], records[0]["lon"], records[0]["city"]) == (51.5074, -0.1278, "London")


def test_yfcc4k_rejects_an_unknown_layout(tmp_path: Path) -> None:
    path = write_table(tmp_path / "y.txt", None, [["1", "2", "3"]], delimiter="\t")
    with pytest.raises(PrepareInputError, match=r"y\.txt:1: .*25 or 23 tab-separated fields; found 3"):
        convert("yfcc4k", tmp_path / "out.jsonl", input=path)


# ------------------------------------------------------------------------------------------------ generic CSV


def test_generic_csv_with_named_columns(tmp_path: Path) -> None:
    header = ["file", "Y", "X", "nation", "shot_by"]
    rows = [["p/1.jpg", "-34.6037", "-58.3816", "Argentina", "bob"], ["p/2.jpg", "1.2903", "103.8519", "", "eve"]]
    path = write_table(tmp_path / "mine.tsv", header, rows, delimiter="\t")
    summary, records = convert(
        "csv", tmp_path / "out.jsonl", input=path,
        columns={"image": "file", "lat": "Y", "lon": "X", "country": "nation"}, keep_columns=("shot_by",),
        id_prefix="own_",
    )  # fmt: skip
    assert summary.written == 2
    ar, sg = records
    assert (ar["id"], ar["image"], ar["lat"], ar["lon"]) == ("own_p/1.jpg", "p/1.jpg", -34.6037, -58.3816)
    assert (ar["country"], ar["country_code"], ar["shot_by"]) == ("Argentina", "AR", "bob")
    # Singapore has no admin1 in GeoNames: the field stays empty, the answer repeats the next level
    assert "region" not in sg and sg["city"] == "Singapore"
    assert "Region: Singapore\nCity: Singapore" in answer_of(sg) and follows_contract(answer_of(sg))


def test_generic_csv_aliases_and_clear_header_errors(tmp_path: Path) -> None:
    path = write_table(tmp_path / "a.csv", ["image_path", "Latitude", "lng"], [["x.jpg", "52.52", "13.405"]])
    summary, records = convert("csv", tmp_path / "out.jsonl", input=path)
    assert (records[0]["id"], records[0]["lat"], records[0]["lon"], records[0]["country"]) == ("x.jpg", 52.52, 13.405, "Germany")
    bad = write_table(tmp_path / "b.csv", ["image", "y", "x"], [["x.jpg", "1", "2"]])
    with pytest.raises(PrepareInputError, match=r"b\.csv:1: header .* has no column for lat, lon"):
        convert("csv", tmp_path / "out2.jsonl", input=bad)
    with pytest.raises(PrepareInputError, match=r"column 'Lat' \(--lat_column\) is not in the header"):
        convert("csv", tmp_path / "out3.jsonl", input=bad, columns={"lat": "Lat", "lon": "x"})
    with pytest.raises(PrepareInputError, match=r"--keep_columns 'lat'"):
        convert("csv", tmp_path / "out4.jsonl", input=path, keep_columns=("lat",))


def test_generic_csv_counts_malformed_rows_and_keeps_namibia(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        "image,lat,lon,country_code\n"
        "a.jpg,-22.56,17.07,NA\n"  # Namibia, not a missing value
        "b.jpg,1,2,XX,extra\n"  # one field too many
        "c.jpg,95,10,\n"  # latitude out of range
        "\n"  # blank lines are ignored
        "d.jpg,nan,10,\n",
        encoding="utf-8",
    )
    summary, records = convert("csv", tmp_path / "out.jsonl", input=path, coordinate_order="lat_lon")
    assert [r["image"] for r in records] == ["a.jpg"] and records[0]["country"] == "Namibia"
    assert summary.skipped == {"malformed_row": 1, "bad_coordinates": 1, "missing_coordinates": 1}
    assert summary.examples["malformed_row"] == [f"{path}:3: 5 fields where the header has 4"]
    assert summary.examples["bad_coordinates"][0].startswith(f"{path}:4: latitude (column lat) '95' is out of range")


def test_column_flags_are_refused_for_exif(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    with pytest.raises(PrepareInputError, match="format exif has no columns"):
        prepare("exif", PrepareOptions(input=tmp_path / "photos", columns={"lat": "x"}), tmp_path / "o.jsonl")
