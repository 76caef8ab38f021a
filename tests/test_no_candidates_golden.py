"""Without retrieval candidates everything is what it was before they existed: prompts (GRPO / eval / app, SFT,
the LLaMA-Factory export), SFT answers, GRPO dataset columns, the format reward and the parser, compared with a
snapshot the code wrote before candidates were added (``tests/golden/no_candidates.json``).

The snapshot was written by running :func:`snapshot` of this file against the package at commit 125e4a8 (the
last commit without candidates)::

    git archive 125e4a8 src | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old/src python tests/test_no_candidates_golden.py --write

:func:`snapshot` uses only functions that existed then, so the same code measures both versions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parent / "golden" / "no_candidates.json"

HUMAN = "<image>\nWhere was this photo taken? Answer with the country, region, city and coordinates."
CONTRACT = (
    "<think> Red buses, left-hand traffic. </think>\n<answer>\nCountry: United Kingdom\nRegion: England\n"
    "City: London\nCoordinates: (51.507400, -0.127800)\n</answer>"
)
ROWS: list[dict[str, Any]] = [
    {"id": "plain", "image": "a.jpg", "lat": 48.8566, "lon": 2.3522, "country": "France", "region": "Ile-de-France",
     "city": "Paris"},
    {"id": "own_turn", "image": "a.jpg", "lat": 51.5074, "lon": -0.1278,
     "conversations": [{"from": "human", "value": HUMAN}, {"from": "gpt", "value": CONTRACT}]},
    {"id": "vlmr1", "image": "a.jpg", "conversations": [
        {"from": "system", "value": "You locate photos."},
        {"from": "human", "value": "<image>Where?"}, {"from": "gpt", "value": "[35.6762, 139.6503]"}]},
    {"id": "geor", "image": "a.jpg", "problem": "Guess the location of this image.", "solution": "[-33.8688, 151.2093]"},
    {"id": "two_images", "image": ["a.jpg", "b.jpg"], "lat": -1.2921, "lon": 36.8219, "country": "Kenya",
     "region": "Nairobi Area", "city": "Nairobi",
     "conversations": [{"from": "human", "value": "First <image> then <image>: where?"}]},
]
COMPLETIONS = [
    CONTRACT,
    CONTRACT.replace("City: London\n", "City: London\nCandidate: none\n"),
    CONTRACT.replace("City: London\n", "City: London\nCandidate: 2\n"),
    CONTRACT.replace("Region:", "State:"),
    "<answer>48.85, 2.35</answer>",
    "Country: Japan\nCandidate: 3\nCoordinates: 35.6 N, 139.7 E",
    "",
]


def _records(folder: Path) -> list[Any]:
    from PIL import Image

    from geo_r.data import load_records

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (32, 24), (120, 80, 40)).save(folder / name)
    data = folder / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    records, _ = load_records(str(data), str(folder), derive_chains=True)
    return records


def _texts(messages: list[dict[str, Any]]) -> list[Any]:
    return [[m["role"], [(b["type"], b.get("text")) for b in m["content"]]] for m in messages]


def snapshot(folder: Path) -> dict[str, Any]:
    """Everything a no-candidate run derives from :data:`ROWS` and :data:`COMPLETIONS`, as JSON-able data."""
    from geo_r.data import build_grpo_dataset, build_prompt
    from geo_r.geo import parse_prediction
    from geo_r.prompts import DEFAULT_QUESTION
    from geo_r.rewards import REWARD_FUNCS
    from geo_r.sft.examples import build_sft_examples
    from geo_r.sft.export import sharegpt_row

    records = _records(folder)
    dataset = build_grpo_dataset(records)
    out: dict[str, Any] = {
        "grpo_columns": sorted(dataset.column_names),
        "grpo_prompts": [_texts(p) for p in dataset.remove_columns("images")["prompt"]],
        "eval_prompts": [_texts(build_prompt(r, DEFAULT_QUESTION)) for r in records],
    }
    for target in ("auto", "render"):
        examples, report = build_sft_examples(records, target=target)
        out[f"sft_{target}"] = [[e.question, e.answer, e.system] for e in examples]
        out[f"sft_{target}_summary"] = report.summary()
        out[f"export_{target}"] = [sharegpt_row(e, folder)["messages"] for e in examples]
    n = len(COMPLETIONS)
    for name in ("format", "geo_r_paper"):
        out[name] = REWARD_FUNCS[name](prompts=["p"] * n, completions=COMPLETIONS, lat=[51.5] * n, lon=[-0.12] * n)
    out["parse"] = [
        [p.country, p.region, p.city, p.lat, p.lon, p.answer_found] for p in map(parse_prediction, COMPLETIONS)
    ]
    return out


def test_no_candidate_outputs_are_unchanged(tmp_path: Path) -> None:
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    got = json.loads(json.dumps(snapshot(tmp_path / "data")))
    for key in expected:
        assert got[key] == expected[key], key
    assert set(got) == set(expected)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(snapshot(Path(tmp) / "data"), indent=1, ensure_ascii=False) + "\n",
                          encoding="utf-8")
    print(f"wrote {GOLDEN}")
