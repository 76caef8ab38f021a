"""The demo with retrieval: the retrieval world, a gallery index, neighbours, and four models side by side.

Runs the project's real commands, like :mod:`geo_r.demo.pipeline` (whose command builders it reuses), on the
retrieval world (:mod:`geo_r.demo.retrieval_world`):

1. the tiny model and the world (gallery, training and held-out photos);
2. ``geo-r index`` of the gallery with the tiny model's own vision tower (``--encoder vision_tower``);
3. ``geo-r retrieve``: the training photos' neighbours (leakage-aware, the photo itself excluded) and the
   held-out photos' neighbours under both protocols (``leakage_aware`` and ``standard``);
4. retrieval-free: ``geo-r sft`` -> ``grpo_jsonl.py`` (format + distance + region), as the demo does;
5. retrieval-augmented: ``geo-r sft --candidates`` -> ``grpo_jsonl.py --candidates`` with
   ``--reward_funcs format distance region candidate``;
6. ``geo-r eval`` of every model on the held-out photos (the augmented ones with each protocol's candidates),
   and ``geo-r eval --predictions ... --candidates`` for the no-model rows (retrieval top-1, candidate oracle).

Every number of the table is read back from the stages' own ``metrics.json`` / ``scores.jsonl``; per-photo
scores are also broken down by what the world says each held-out photo is (``kind``). A stage whose output is
already complete (its ``metrics.json``, ``config.json``, index manifest or neighbours summary) is not run
again, so an interrupted run continues where it stopped (``--overwrite`` starts over).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from geo_r.demo.pipeline import (
    REWARD_NAMES,
    DemoConfig,
    eval_command,
    grpo_command,
    heading,
    python_executable,
    run_stage,
    sft_command,
)
from geo_r.demo.retrieval_world import HELDOUT_KINDS, PHOTO_HEIGHT, RetrievalWorldConfig
from geo_r.demo.world import IMAGE_SIZE

THRESHOLDS_KM: tuple[int, ...] = (1, 25, 200, 750, 2500)
PROTOCOLS: tuple[str, ...] = ("leakage_aware", "standard")
SUMMARY_FILE = "retrieval_demo_summary.json"
CANDIDATE_REWARDS: tuple[str, ...] = (*REWARD_NAMES, "candidate")


@dataclass
class RetrievalDemoConfig(DemoConfig):
    """The recipe of the retrieval demo: :class:`DemoConfig`'s training settings (the same SFT and GRPO for
    both arms), the retrieval world and the retrieval settings. DemoConfig's own world fields
    (``train_per_place``, ``heldout_per_place``, ``jitter_km``, ``coordinate_decimals``) are not used here:
    ``world`` describes the photos."""

    out_dir: str = "outputs/demo_retrieval"
    # SFT answers are the photos' true chains: a simulated teacher's answers carry no Candidate line, so the
    # augmented arm would replace them with true ones and the two arms would learn from different answers.
    teacher_accuracy: float = -1.0
    k: int = 10  # neighbours per photo (geo-r retrieve --k)
    num_candidates: int = 3  # candidates in the prompt (clustered within candidate_radius_km)
    candidate_radius_km: float = 1.0
    # The tiny model's random vision tower puts every photo in a narrow cone (unrelated photos ~0.8, shots of one
    # site ~0.95, re-posts >= 0.99): 0.95 (the default, for CLIP-like encoders) would drop genuine shots.
    near_dup_threshold: float = 0.99
    candidate_reward_weight: float = 1.0
    eval_standard_models: bool = True  # also evaluate the augmented GRPO model with standard-protocol candidates
    # also evaluate the SFT models on their own (retrieval-free SFT; augmented SFT with standard candidates):
    # rows of interest, not needed for the table's comparison; the bench turns them off to save time
    eval_sft_extras: bool = True
    world: RetrievalWorldConfig = field(default_factory=RetrievalWorldConfig)

    @property
    def max_pixels(self) -> int:
        """The retrieval world's photos are 112 x 140 (20 image tokens)."""
        return IMAGE_SIZE * PHOTO_HEIGHT

    def candidate_reward_flags(self) -> list[str]:
        """The augmented GRPO's reward flags: the demo's three plus ``candidate``."""
        return [
            "--reward_funcs", *CANDIDATE_REWARDS,
            "--reward_weights", *self.reward_weights.replace(",", " ").split(), str(self.candidate_reward_weight),
            "--distance_reward", self.distance_reward,
            "--geoscore_scale_km", str(self.geoscore_scale_km),
        ]


def _candidate_flags(cfg: RetrievalDemoConfig, neighbours: Path) -> list[str]:
    return ["--candidates", str(neighbours), "--num_candidates", str(cfg.num_candidates),
            "--candidate_radius_km", str(cfg.candidate_radius_km)]


def _with_thresholds(cmd: list[str]) -> list[str]:
    """An eval command with the retrieval table's thresholds (1 km included) instead of the demo's."""
    i = cmd.index("--thresholds")
    j = i + 1
    while j < len(cmd) and not cmd[j].startswith("--"):
        j += 1
    return [*cmd[: i + 1], *map(str, THRESHOLDS_KM), *cmd[j:]]


def index_command(cfg: RetrievalDemoConfig, model: Path, gallery: Path, images: Path, out: Path) -> list[str]:
    """``geo-r index`` of the gallery with the model's own vision tower."""
    return [python_executable(), "-m", "geo_r.cli", "index", "--model_name_or_path", str(model), "--encoder", "vision_tower",
            "--data_file_paths", str(gallery), "--image_folders", str(images), "--output_dir", str(out),
            "--max_pixels", str(cfg.max_pixels), "--device", "cpu", "--num_workers", "1"]


def retrieve_command(cfg: RetrievalDemoConfig, index: Path, data: Path, images: Path, out: Path,
                     protocol: str) -> list[str]:
    """``geo-r retrieve`` of ``data``'s photos under ``protocol``."""
    return [python_executable(), "-m", "geo_r.cli", "retrieve", "--index", str(index), "--data_file_paths", str(data),
            "--image_folders", str(images), "--k", str(cfg.k), "--protocol", protocol,
            "--near_dup_threshold", str(cfg.near_dup_threshold), "--out", str(out), "--device", "cpu",
            "--num_workers", "1", "--overwrite"]


def _done(path: Path) -> bool:
    return path.is_file()


def _retrieve_done(out: Path) -> bool:
    summary = out.with_name(out.name[: -len(".jsonl")] + ".summary.json")
    if not (out.is_file() and summary.is_file()):
        return False
    return bool(json.loads(summary.read_text(encoding="utf-8")).get("complete"))


def _metrics(eval_dir: Path) -> dict[str, Any]:
    return json.loads((eval_dir / "metrics.json").read_text(encoding="utf-8"))


def model_row(eval_dir: Path) -> dict[str, Any]:
    """The model's accuracies (percent of all held-out photos), median km and parse rate, from metrics.json."""
    m = _metrics(eval_dir)
    row: dict[str, Any] = {f"acc@{t}km": m[f"acc@{t}km"] for t in THRESHOLDS_KM}
    row["median_km"] = m["median_km_worst_case"]
    row["parse_rate"] = m["parse_rate"]
    if "candidates" in m:
        block = m["candidates"]
        row["candidate_use"] = {key: block.get(key) for key in (
            "named_pct", "named_best_pct", "named_top1_pct", "none_pct", "no_line_pct", "not_offered_pct",
            *(f"ignored_correct_pct@{t}km" for t in THRESHOLDS_KM))}
    return row


def retrieval_rows(eval_dir: Path) -> dict[str, dict[str, Any]]:
    """The no-model rows of an evaluation with candidates: retrieval top-1 and the candidate oracle."""
    m = _metrics(eval_dir)
    return {
        "retrieval_top1": {f"acc@{t}km": m[f"retrieval_top1_acc@{t}km"] for t in THRESHOLDS_KM}
        | {"median_km": m.get("retrieval_top1_median_km")},
        "candidate_oracle": {f"acc@{t}km": m[f"candidate_oracle_acc@{t}km"] for t in THRESHOLDS_KM}
        | {"median_km": m.get("candidate_oracle_median_km")},
    }


# Groups of held-out photos beyond the world's kinds: photos of covered sites by the site's owner (whose own
# gallery shots of the spot the leakage-aware protocol drops) and by anyone else.
AUTHOR_GROUPS: tuple[str, ...] = ("owner_query", "other_author_query")


def heldout_groups(heldout: Path) -> dict[str, list[str]]:
    """Each held-out id's groups: its ``kind`` and, for photos of covered sites, ``owner_query`` or
    ``other_author_query`` (owners from ``sites.json`` beside ``heldout``)."""
    owners = {s["id"]: s["owner"] for s in json.loads((heldout.parent / "sites.json").read_text(encoding="utf-8"))}
    groups: dict[str, list[str]] = {}
    for line in heldout.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            mine = [rec["kind"]]
            if rec["kind"] in ("gallery_site", "gallery_only_site"):
                mine.append("owner_query" if rec["author"] == owners[rec["site"]] else "other_author_query")
            groups[rec["id"]] = mine
    return groups


def by_kind(eval_dir: Path, heldout: Path) -> dict[str, dict[str, Any]]:
    """Accuracy at 1 and 25 km per kind of held-out photo (``kind`` of the world's records) and per author
    group (:data:`AUTHOR_GROUPS`), the model's and, when the evaluation had candidates, retrieval top-1's and
    the oracle's, from ``scores.jsonl``; plus the share of answers naming no candidate."""
    groups = heldout_groups(heldout)
    rows = [json.loads(line) for line in (eval_dir / "scores.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    out: dict[str, dict[str, Any]] = {}
    for kind in (*HELDOUT_KINDS, *AUTHOR_GROUPS):
        mine = [r for r in rows if kind in groups.get(r["id"], ())]
        if not mine:
            continue
        entry: dict[str, Any] = {"n": len(mine)}
        for name, key in (("model", "distance_km"), ("retrieval_top1", "retrieval_top1_km"),
                          ("candidate_oracle", "oracle_km")):
            if key not in mine[0]:
                continue
            for t in (1, 25):
                hits = sum(1 for r in mine if r.get(key) is not None and r[key] <= t)
                entry[f"{name}_acc@{t}km"] = 100.0 * hits / len(mine)
        if "pred_candidate" in mine[0]:
            entry["model_none_pct"] = 100.0 * sum(r.get("pred_candidate") == 0 for r in mine) / len(mine)
        out[kind] = entry
    return out


def _retrieve_summary(path: Path) -> dict[str, Any]:
    summary = json.loads(path.with_name(path.name[: -len(".jsonl")] + ".summary.json").read_text(encoding="utf-8"))
    return {key: summary[key] for key in ("dropped", "flagged", "retrieval_top1_within_km", "queries_written",
                                          "queries_with_fewer_than_k")}


def near_duplicate_check(neighbours_standard: Path, heldout: Path, threshold: float) -> dict[str, int]:
    """How the near-duplicate rule did on the world's known re-posts: of the ``near_duplicate`` photos, how
    many have their original among their standard-protocol neighbours at or above ``threshold`` (the rule
    drops it), and how many other neighbour rows of all photos reach the threshold (genuine shots it drops)."""
    truth = {}
    for line in heldout.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            truth[rec["id"]] = rec.get("duplicate_of") or ""
    caught = reposts = other = 0
    for line in neighbours_standard.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        original = truth.get(obj["id"], "")
        reposts += bool(original)
        for n in obj["neighbours"]:
            if n["score"] >= threshold:
                if n["id"] == original:
                    caught += 1
                else:
                    other += 1
    return {"reposts": reposts, "reposts_caught": caught, "other_rows_at_or_above_threshold": other}


def run_retrieval_demo(cfg: RetrievalDemoConfig, show_progress: bool = True, overwrite: bool = False,
                       train: bool = True) -> dict:
    """Run every stage under ``cfg.out_dir`` (skipping complete ones); return and write the summary.

    ``train=False`` runs only what the no-model rows need (world, index, held-out neighbours, the untrained
    model's answers rescored with each protocol's candidates): retrieval top-1 and the candidate oracle, in
    minutes instead of the trainings' tens of minutes."""
    from geo_r.demo.retrieval_world import write_retrieval_world
    from geo_r.demo.tiny_model import build_tiny_model

    out = Path(cfg.out_dir).resolve()
    if overwrite and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    timings: dict[str, float] = {}
    t_all = time.monotonic()

    def stage(name: str, cmd: list[str], done: bool) -> None:
        if done:
            print(f"{name}: already complete, kept", flush=True)
            return
        timings[name] = run_stage(name, cmd, logs, show_progress)

    heading(f"tiny {cfg.family} ({cfg.size}) model and the retrieval world, seed {cfg.seed} -> {out}")
    model = out / "model"
    if not (model / "config.json").is_file():
        build_tiny_model(model, family=cfg.family, seed=cfg.seed, size=cfg.size, max_pixels=cfg.max_pixels)
    world_dir = out / "world"
    if not (world_dir / "sites.json").is_file():
        write_retrieval_world(world_dir, cfg.world, seed=cfg.seed)
    world = {name: world_dir / f"{name}.jsonl" for name in ("gallery", "train", "heldout")}
    images = world_dir / "images"
    counts = {name: sum(1 for _ in path.open()) for name, path in world.items()}
    print(f"gallery {counts['gallery']} photos, training {counts['train']}, held-out {counts['heldout']}", flush=True)

    heading("gallery index (the tiny model's vision tower) and neighbours")
    idx = out / "index"
    stage("index", index_command(cfg, model, world["gallery"], images, idx), _done(idx / "manifest.json"))
    nb = {"train": out / "neighbours" / "train.leakage_aware.jsonl",
          **{p: out / "neighbours" / f"heldout.{p}.jsonl" for p in PROTOCOLS}}
    if train:
        stage("retrieve_train", retrieve_command(cfg, idx, world["train"], images, nb["train"], "leakage_aware"),
              _retrieve_done(nb["train"]))
    else:
        del nb["train"]
    for p in PROTOCOLS:
        stage(f"retrieve_heldout_{p}", retrieve_command(cfg, idx, world["heldout"], images, nb[p], p),
              _retrieve_done(nb[p]))

    evals = out / "eval"

    def evaluate(name: str, model_dir: Path, protocol: str | None) -> None:
        cmd = _with_thresholds(eval_command(cfg, model_dir, world["heldout"], images, evals / name, name))
        if protocol is not None:
            cmd += _candidate_flags(cfg, nb[protocol])
        stage(f"eval_{name}", cmd, _done(evals / name / "metrics.json"))

    protocols = PROTOCOLS if cfg.eval_standard_models else PROTOCOLS[:1]
    sft_protocols = protocols if cfg.eval_sft_extras else PROTOCOLS[:1]
    if train:
        heading(f"retrieval-free: SFT ({cfg.sft_steps} steps) -> GRPO ({cfg.grpo_steps} steps), rewards "
                f"{' + '.join(REWARD_NAMES)}")
        stage("sft_plain", sft_command(cfg, model, world["train"], images, out / "sft_plain"),
              _done(out / "sft_plain" / "config.json"))
        if cfg.eval_sft_extras:
            evaluate("sft_plain", out / "sft_plain", None)
        stage("grpo_plain", grpo_command(cfg, out / "sft_plain", world["train"], images, out / "grpo_plain"),
              _done(out / "grpo_plain" / "config.json"))
        evaluate("grpo_plain", out / "grpo_plain", None)

        heading(f"retrieval-augmented: SFT --candidates -> GRPO --candidates, rewards {' + '.join(CANDIDATE_REWARDS)}")
        cand = _candidate_flags(cfg, nb["train"])
        stage("sft_cand", sft_command(cfg, model, world["train"], images, out / "sft_cand") + cand,
              _done(out / "sft_cand" / "config.json"))
        for p in sft_protocols:
            evaluate(f"sft_cand.{p}", out / "sft_cand", p)
        grpo = grpo_command(cfg, out / "sft_cand", world["train"], images, out / "grpo_cand",
                            reward_flags=cfg.candidate_reward_flags()) + cand
        stage("grpo_cand", grpo, _done(out / "grpo_cand" / "config.json"))
        for p in protocols:
            evaluate(f"grpo_cand.{p}", out / "grpo_cand", p)

    else:
        heading("no training: the untrained model's answers, for the no-model rows only")
        evaluate("untrained", model, None)
    answers = evals / ("grpo_plain" if train else "untrained") / "predictions.jsonl"

    heading("no-model rows: retrieval top-1 and the candidate oracle, under both protocols")
    for p in PROTOCOLS:  # the retrieval-free model's answers rescored with candidates: no generation
        name = f"retrieval.{p}"
        cmd = _with_thresholds([
            python_executable(), "-m", "geo_r.cli", "eval", "--predictions", str(answers),
            "--data_file_paths", str(world["heldout"]), "--image_folders", str(images), "--output_dir",
            str(evals / name), "--overwrite", "--run_name", name, "--thresholds", "--benchmark", "none",
        ]) + _candidate_flags(cfg, nb[p])
        stage(f"eval_{name}", cmd, _done(evals / name / "metrics.json"))

    rows: dict[str, dict[str, Any]] = {}
    for p in PROTOCOLS:
        for key, row in retrieval_rows(evals / f"retrieval.{p}").items():
            rows[f"{key}.{p}"] = row
    evaluated = [*(["sft_plain"] if cfg.eval_sft_extras else []), "grpo_plain",
                 *(f"sft_cand.{p}" for p in sft_protocols), *(f"grpo_cand.{p}" for p in protocols)] if train else []
    for name in evaluated:
        rows[name] = model_row(evals / name)
    kinds = {name: by_kind(evals / name, world["heldout"])
             for name in (*evaluated, *(f"retrieval.{p}" for p in PROTOCOLS))}
    timings["total"] = time.monotonic() - t_all
    summary = {
        "config": asdict(cfg),
        "trained": train,
        "world_counts": counts,
        "rows": rows,
        "by_kind": kinds,
        "retrieve": {name: _retrieve_summary(path) for name, path in nb.items()},
        "near_duplicate_rule": near_duplicate_check(nb["standard"], world["heldout"], cfg.near_dup_threshold),
        "timings_s": timings,
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    table = format_table(rows)
    (out / "retrieval_demo_table.md").write_text(table + "\n", encoding="utf-8")
    heading("held-out photos")
    print(table, flush=True)
    return summary


ROW_LABELS: dict[str, str] = {
    "retrieval_top1": "retrieval top-1 (no model)",
    "candidate_oracle": "candidate oracle (no model)",
    "sft_plain": "retrieval-free SFT",
    "grpo_plain": "retrieval-free SFT -> GRPO",
    "sft_cand": "retrieval-augmented SFT",
    "grpo_cand": "retrieval-augmented SFT -> GRPO",
}


def row_label(key: str) -> str:
    """``grpo_cand.standard`` -> ``retrieval-augmented SFT -> GRPO (standard)``."""
    name, _, protocol = key.partition(".")
    label = ROW_LABELS.get(name, name)
    return f"{label} ({protocol.replace('_', '-')})" if protocol else label


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    """A markdown table: one row per method and protocol, accuracy at every threshold."""
    head = ["method (candidates' protocol)", *(f"acc@{t} km" for t in THRESHOLDS_KM)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, row in rows.items():
        cells = [row_label(key)] + [f"{row[f'acc@{t}km']:.1f}%" for t in THRESHOLDS_KM]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
