"""The CPU demo pipeline: tiny model -> toy world -> eval -> SFT -> eval -> GRPO -> eval -> one table.

Each training or evaluation stage runs the project's real command in a child process (``geo-r sft``,
``src/geo_r/grpo_jsonl.py``, ``geo-r eval``), exactly as a user would, with its progress bar on the
terminal and its full log in ``<out>/logs/``. The model and the toy world are built in-process through
their Python APIs. The recipe (steps, learning rates, group size, temperature, reward settings) lives in
:class:`DemoConfig`; every number the final table shows is read back from the stages' own outputs
(``metrics.json`` of ``geo-r eval``) plus the mean GRPO reward recomputed on the held-out predictions
with the same reward functions and settings the GRPO stage trained on.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from geo_r.demo.world import IMAGE_SIZE

STAGES: tuple[str, ...] = ("untrained", "sft", "grpo")
THRESHOLDS_KM: tuple[int, ...] = (25, 200, 750, 2500)
REWARD_NAMES: tuple[str, ...] = ("format", "distance", "region")
SUMMARY_FILE = "demo_summary.json"


@dataclass
class DemoConfig:
    """The demo recipe. Defaults are the README's run: about 6 minutes on 2 CPU cores."""

    out_dir: str = "outputs/demo_full"
    seed: int = 0
    family: str = "qwen2_5_vl"
    size: str = "small"
    train_per_place: int = 8
    heldout_per_place: int = 4
    jitter_km: float = 0.0  # photos carry their city's coordinates ...
    coordinate_decimals: int = 1  # ... to 0.1 degree: a label a tiny model learns in minutes
    # SFT answers: -1 renders every photo's true chain; 0..1 simulates a teacher that over-predicts famous
    # countries (names a photo from Canada, Australia, Japan, India, Russia, Argentina or Kenya right this
    # often, else as the famous country's best-known city; world.TEACHER_CONFUSIONS).
    teacher_accuracy: float = 0.4
    # SFT warm-up: teaches the answer contract and a first reading of the cues.
    sft_steps: int = 300
    sft_learning_rate: float = 2e-3
    sft_batch_size: int = 8
    # GRPO: format + distance + region rewards.
    grpo_steps: int = 40
    grpo_learning_rate: float = 3e-4
    grpo_batch_size: int = 32
    num_generations: int = 8
    temperature: float = 0.5  # samples the teacher's 40 % right answers often enough; 1.0 garbles the format
    max_completion_length: int = 80
    beta: float = 0.1  # KL to the SFT model (VLM-R1 / Geo-R: 0.04): keeps what SFT got right in place
    scale_rewards: str = "none"  # no division by the group's reward std: near-tied groups stay near-silent
    reward_weights: str = "0.2,1,1"  # format, distance, region: format is learnt in SFT and easy to game
    distance_reward: str = "geoscore"
    geoscore_scale_km: float = 1492.7
    # Evaluation (greedy) on the held-out photos.
    eval_max_new_tokens: int = 96
    extra_grpo_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not (self.teacher_accuracy == -1.0 or 0.0 <= self.teacher_accuracy <= 1.0):
            raise ValueError(f"--teacher_accuracy must be -1 (true chains) or between 0 and 1, "
                             f"got {self.teacher_accuracy}")

    @property
    def teacher(self) -> float | None:
        """The simulated teacher's accuracy for :func:`geo_r.demo.world.write_world`; None for true answers."""
        return None if self.teacher_accuracy < 0 else self.teacher_accuracy

    @property
    def max_pixels(self) -> int:
        """Pixel budget of every stage: the world's photo size (16 image tokens on Qwen2.5-VL)."""
        return IMAGE_SIZE * IMAGE_SIZE

    def reward_flags(self) -> list[str]:
        """The reward settings as grpo_jsonl.py flags (the same settings score the table's mean reward)."""
        return [
            "--reward_funcs", *REWARD_NAMES,
            "--reward_weights", *self.reward_weights.replace(",", " ").split(),
            "--distance_reward", self.distance_reward,
            "--geoscore_scale_km", str(self.geoscore_scale_km),
        ]


def _repo_root() -> Path:
    """The repository root (holds src/geo_r/grpo_jsonl.py)."""
    return Path(__file__).resolve().parents[3]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONWARNINGS="ignore",
        PYTHONUNBUFFERED="1",
    )
    return env


def heading(text: str) -> None:
    """Print a stage heading a person can spot in the scroll."""
    print(f"\n=== {text} ===", flush=True)


def _is_progress(segment: str) -> bool:
    """Whether a piece of a child's output is a tqdm progress bar (``  40%|####  | 12/30 [...it/s]``)."""
    return "|" in segment and ("it/s" in segment or "s/it" in segment or "img/s" in segment or "?it" in segment)


class _ProgressEcho:
    """Echo only the progress bars of a child's output to the terminal, redrawn in place on one line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.pending = ""
        self.shown = False

    def feed(self, text: str) -> None:
        """Take more output; show each complete bar redraw (pieces end with a carriage return or newline)."""
        self.pending += text
        *pieces, self.pending = re.split(r"[\r\n]", self.pending)
        for piece in pieces:
            if _is_progress(piece):
                self.stream.write("\r" + piece.strip()[:150].ljust(150))
                self.stream.flush()
                self.shown = True

    def close(self) -> None:
        """End the progress line."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def run_stage(name: str, cmd: Sequence[str], log_dir: Path, show_progress: bool = True) -> float:
    """Run one stage's command; its progress bars go to the terminal, all its output to ``log_dir/name.log``.

    Returns the wall time in seconds. Raises RuntimeError (with the log's tail) when the command fails.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    echo = _ProgressEcho(sys.stderr) if show_progress else None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    t0 = time.monotonic()
    with log.open("w", encoding="utf-8") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_child_env(),
                                cwd=_repo_root())
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while data := os.read(fd, 65536):
            text = decoder.decode(data)
            f.write(text)
            f.flush()  # so `tail -f logs/<stage>.log` follows the stage live
            if echo:
                echo.feed(text)
        rc = proc.wait()
    if echo:
        echo.close()
    if rc != 0:
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-25:])
        raise RuntimeError(f"stage {name} failed (exit {rc}); full log: {log}\n{tail}")
    return time.monotonic() - t0


def python_executable() -> str:
    return sys.executable


def eval_command(cfg: DemoConfig, model: Path, data: Path, images: Path, out: Path, run_name: str) -> list[str]:
    """``geo-r eval`` (greedy, held-out photos) of ``model`` into ``out``."""
    return [
        python_executable(), "-m", "geo_r.cli", "eval",
        "--model_name_or_path", str(model),
        "--data_file_paths", str(data),
        "--image_folders", str(images),
        "--output_dir", str(out),
        "--overwrite",
        "--run_name", run_name,
        "--max_new_tokens", str(cfg.eval_max_new_tokens),
        "--batch_size", "16",
        "--max_pixels", str(cfg.max_pixels),
        "--thresholds", *map(str, THRESHOLDS_KM),
        "--benchmark", "none",
    ]


def _cpu_training_flags(cfg: DemoConfig) -> list[str]:
    """Flags both trainings share: float32 on CPU, no checkpoints or reporting, the demo's seed and pixels."""
    return [
        "--gradient_checkpointing", "false",  # a 5M-parameter model: recomputing activations only costs time
        "--dtype", "float32",
        "--bf16", "false",
        "--save_strategy", "no",
        "--report_to", "none",
        "--seed", str(cfg.seed),
        "--max_pixels", str(cfg.max_pixels),
    ]


def sft_command(cfg: DemoConfig, model: Path, data: Path, images: Path, out: Path) -> list[str]:
    """``geo-r sft``: the built-in warm-up on the training photos."""
    return [
        python_executable(), "-m", "geo_r.cli", "sft",
        "--model_name_or_path", str(model),
        "--data_file_paths", str(data),
        "--image_folders", str(images),
        "--output_dir", str(out),
        "--max_steps", str(cfg.sft_steps),
        "--per_device_train_batch_size", str(cfg.sft_batch_size),
        "--learning_rate", str(cfg.sft_learning_rate),
        "--warmup_steps", str(max(1, cfg.sft_steps // 12)),
        "--logging_steps", "10",
        *_cpu_training_flags(cfg),
    ]


def grpo_command(cfg: DemoConfig, model: Path, data: Path, images: Path, out: Path,
                 reward_flags: list[str] | None = None) -> list[str]:
    """``grpo_jsonl.py`` with the format, distance and region rewards (or ``reward_flags``), starting from the
    SFT model."""
    return [
        python_executable(), str(_repo_root() / "src" / "geo_r" / "grpo_jsonl.py"),
        "--model_name_or_path", str(model),
        "--data_file_paths", str(data),
        "--image_folders", str(images),
        "--output_dir", str(out),
        *(cfg.reward_flags() if reward_flags is None else reward_flags),
        "--max_steps", str(cfg.grpo_steps),
        "--per_device_train_batch_size", str(cfg.grpo_batch_size),
        "--num_generations", str(cfg.num_generations),
        "--max_completion_length", str(cfg.max_completion_length),
        "--temperature", str(cfg.temperature),
        "--learning_rate", str(cfg.grpo_learning_rate),
        "--beta", str(cfg.beta),
        "--scale_rewards", cfg.scale_rewards,
        "--logging_steps", "5",
        *_cpu_training_flags(cfg),
        *cfg.extra_grpo_args,
    ]


def mean_reward(cfg: DemoConfig, predictions: Path, data: Path) -> float:
    """Mean of format + distance + region (unweighted, 0 to 3; the GRPO stage's distance settings) per photo."""
    from geo_r.rewards import RewardArguments, get_reward_funcs

    truth = {}
    for line in data.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            truth[rec["id"]] = rec
    preds = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines() if line.strip()]
    preds = [p for p in preds if p.get("id") in truth]
    if not preds:
        raise RuntimeError(f"{predictions}: no prediction matches an id of {data}")
    rows = [truth[p["id"]] for p in preds]
    kwargs = {k: [r.get(k) for r in rows] for k in ("lat", "lon", "country", "country_code", "region", "city")}
    args = RewardArguments(distance_reward=cfg.distance_reward, geoscore_scale_km=cfg.geoscore_scale_km)
    completions = [str(p.get("completion") or "") for p in preds]
    totals = [0.0] * len(preds)
    for fn in get_reward_funcs(list(REWARD_NAMES), args):
        values = fn(prompts=[None] * len(preds), completions=completions, **kwargs)
        totals = [t + (v or 0.0) for t, v in zip(totals, values, strict=True)]
    return statistics.fmean(totals)


def stage_row(cfg: DemoConfig, eval_dir: Path, data: Path) -> dict[str, float | None]:
    """One table row: parse rate, accuracies, median km (from metrics.json) and the mean reward."""
    metrics = json.loads((eval_dir / "metrics.json").read_text(encoding="utf-8"))
    row: dict[str, float | None] = {"parse_rate": metrics["parse_rate"]}
    for t in THRESHOLDS_KM:
        row[f"acc@{t}km"] = metrics[f"acc@{t}km"]
    # An unparsed answer counts as the worst case (antipode), so the median compares all rows fairly.
    row["median_km"] = metrics["median_km_worst_case"]
    row["mean_km"] = metrics["mean_km_worst_case"]  # in the summary JSON: moves when the median is tied at 0
    row["mean_reward"] = mean_reward(cfg, eval_dir / "predictions.jsonl", data)
    return row


def format_table(rows: dict[str, dict[str, float | None]]) -> str:
    """The three-row markdown table (untrained, after SFT, after GRPO)."""
    labels = {"untrained": "untrained", "sft": "after SFT", "grpo": "after GRPO"}
    cols = ["parse_rate", *(f"acc@{t}km" for t in THRESHOLDS_KM), "median_km", "mean_reward"]
    head = ["model", "parse rate", *(f"acc@{t} km" for t in THRESHOLDS_KM), "median km", "mean reward (of 3)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stage, row in rows.items():
        cells = [labels.get(stage, stage)]
        for c in cols:
            v = row.get(c)
            if v is None:
                cells.append("n/a")
            elif c == "median_km":
                cells.append(f"{v:,.0f}")
            elif c == "mean_reward":
                cells.append(f"{v:.3f}")
            else:  # geo-r eval writes rates in percent
                cells.append(f"{v:.1f}%")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_demo(cfg: DemoConfig, show_progress: bool = True) -> dict:
    """Run every stage of the demo under ``cfg.out_dir``; return (and write) the summary with the table."""
    from geo_r.demo.tiny_model import build_tiny_model
    from geo_r.demo.world import write_world

    out = Path(cfg.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    timings: dict[str, float] = {}
    t_all = time.monotonic()
    n_steps = 8

    def step(i: int, text: str) -> None:
        heading(f"[{i}/{n_steps}] {text}")

    step(1, f"tiny {cfg.family} ({cfg.size}) model, seed {cfg.seed} -> {out / 'model'}")
    t0 = time.monotonic()
    model_dir = out / "model"
    build_tiny_model(model_dir, family=cfg.family, seed=cfg.seed, size=cfg.size, max_pixels=cfg.max_pixels)
    timings["model"] = time.monotonic() - t0

    step(2, f"toy world: {cfg.train_per_place} train + {cfg.heldout_per_place} held-out photos per place "
            f"-> {out / 'world'}")
    t0 = time.monotonic()
    world = write_world(out / "world", cfg.train_per_place, cfg.heldout_per_place, seed=cfg.seed,
                        jitter_km=cfg.jitter_km, decimals=cfg.coordinate_decimals,
                        teacher_accuracy=cfg.teacher)
    timings["world"] = time.monotonic() - t0
    n_train = sum(1 for _ in world["train"].open())
    n_held = sum(1 for _ in world["heldout"].open())
    n_places = n_held // cfg.heldout_per_place
    teacher = ("true chains" if cfg.teacher is None else f"a teacher that over-predicts famous countries, "
               f"right on {cfg.teacher:.0%} of the photos it confuses")
    print(f"{n_train} training photos (SFT answers: {teacher}), {n_held} held-out photos of the same {n_places} "
          "places", flush=True)

    rows: dict[str, dict[str, float | None]] = {}
    held, images = world["heldout"], world["images"]

    def evaluate(i: int, stage: str, model: Path) -> None:
        step(i, f"evaluate the {'untrained' if stage == 'untrained' else stage.upper()} model on "
                f"{n_held} held-out photos -> {out / 'eval' / stage}")
        timings[f"eval_{stage}"] = run_stage(
            f"eval_{stage}", eval_command(cfg, model, held, images, out / "eval" / stage, stage), logs, show_progress
        )
        rows[stage] = stage_row(cfg, out / "eval" / stage, held)
        print(format_table({stage: rows[stage]}).splitlines()[-1], flush=True)

    evaluate(3, "untrained", model_dir)
    step(4, f"SFT warm-up: {cfg.sft_steps} steps, lr {cfg.sft_learning_rate} -> {out / 'sft'}")
    timings["sft"] = run_stage("sft", sft_command(cfg, model_dir, world["train"], images, out / "sft"), logs,
                               show_progress)
    evaluate(5, "sft", out / "sft")
    step(6, f"GRPO: {cfg.grpo_steps} steps, {cfg.grpo_batch_size} completions a step in groups of "
            f"{cfg.num_generations}, rewards {' + '.join(REWARD_NAMES)} -> {out / 'grpo'}")
    timings["grpo"] = run_stage("grpo", grpo_command(cfg, out / "sft", world["train"], images, out / "grpo"), logs,
                                show_progress)
    from geo_r.trainer.log_table import format_table as format_log
    from geo_r.trainer.log_table import log_rows

    print("GRPO training log (training photos, sampled completions):")
    print(format_log(log_rows(out / "grpo" / "trainer_state.json")), flush=True)
    evaluate(7, "grpo", out / "grpo")

    step(8, "results on the held-out photos")
    table = format_table(rows)
    timings["total"] = time.monotonic() - t_all
    summary = {"config": asdict(cfg), "rows": rows, "table": table, "timings_s": timings,
               "reports": {s: str(out / "eval" / s / "report.md") for s in rows},
               "maps": {s: str(out / "eval" / s / "map.png") for s in rows}}
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out / "demo_table.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    print(f"\nreports and maps: {out / 'eval'}/<stage>/report.md, map.png, error_cdf.png; "
          f"summary: {out / SUMMARY_FILE}; total {timings['total']:.0f} s", flush=True)
    return summary
