"""Drop-in for Geo-R / VLM-R1 users: their grpo_rec.py flags (--dataset_name x.yaml, --image_root) and the
Must-show run: a Geo-R problem/solution jsonl mixed through a data_config yaml trains on the tiny model under
the VLM-R1 flag set, and the rewards receive exactly the sampled records' coordinates."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
ENTRY = REPO / "src" / "geo_r" / "grpo_jsonl.py"
PROBE_ENV = "GEO_R_DROPIN_PROBE"

# Geo-R's src/open-r1-multimodal/run_scripts/run_grpo_rec.sh, flag for flag (paths replaced; --deepspeed left
# out: on CPU it needs a torchrun launch, which tests/test_grpo_train.py covers; one batch size adapted to one
# process).
GEO_R_SCRIPT_FLAGS = [
    "--output_dir", "OUT",
    "--model_name_or_path", "MODEL",
    "--dataset_name", "data_config/rec.yaml",
    "--image_root", "/your_image_path",
    "--max_prompt_length", "512",
    "--num_generations", "4",
    "--per_device_train_batch_size", "4",  # the script's 1 is for 8 GPUs: per_device x processes x GA must divide by 4
    "--gradient_accumulation_steps", "1",
    "--logging_steps", "1",
    "--bf16",
    "--torch_dtype", "bfloat16",
    "--data_seed", "42",
    "--report_to", "wandb",
    "--gradient_checkpointing", "false",
    "--attn_implementation", "flash_attention_2",
    "--num_train_epochs", "1",
    "--run_name", "Qwen2.5-VL-3B-GRPO-Geo-R",
    "--save_steps", "100",
    "--save_only_model", "true",
]  # fmt: skip


def coordinates_probe(prompts, completions, completion_ids=None, **kwargs) -> list[float]:
    """Test-only reward (loaded by the entrypoint as ``this_file.py:coordinates_probe``): appends the ids and
    coordinates TRL hands to every reward function to the file named by $GEO_R_DROPIN_PROBE, and scores
    longer completions higher so that GRPO groups have variance and weights move."""
    with open(os.environ[PROBE_ENV], "a", encoding="utf-8") as f:
        f.write(json.dumps({key: list(kwargs[key]) for key in ("id", "lat", "lon", "solution")}) + "\n")
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [min(len(t) / 100.0, 1.0) for t in texts]


# ---------------------------------------------------------------- flags


def test_geo_r_script_flags_parse_and_reconcile(monkeypatch: pytest.MonkeyPatch) -> None:
    from geo_r.grpo.compat import reconcile
    from geo_r.grpo_jsonl import parse_args

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    script, _rewards, model, compat, training = parse_args(GEO_R_SCRIPT_FLAGS)
    assert script.dataset_name == "data_config/rec.yaml" and script.image_root == "/your_image_path"
    assert script.data_file_paths is None and script.reward_funcs == ["format", "distance", "region"]
    assert training.data_seed == 42 and training.gradient_checkpointing is False and training.bf16 is True
    notes = "\n".join(reconcile(script, model, compat, SimpleNamespace(report_to=list(training.report_to))))
    assert "--dataset_name" not in notes, "a mixture yaml is used, not ignored"
    assert "--max_prompt_length 512 ignored" in notes and model.dtype == "bfloat16"


def test_reconcile_refuses_ambiguous_data_flags() -> None:
    from geo_r.grpo.arguments import GeoModelArguments, GeoScriptArguments, VLMR1CompatArguments
    from geo_r.grpo.compat import reconcile

    def notes(**script_fields) -> str:
        script = GeoScriptArguments(**script_fields)
        return "\n".join(
            reconcile(script, GeoModelArguments(), VLMR1CompatArguments(), SimpleNamespace(report_to=[]))
        )

    assert notes(dataset_name="mix.yaml") == ""
    assert "--dataset_name this_is_not_used ignored" in notes(
        dataset_name="this_is_not_used", data_file_paths="a.jsonl"
    )
    with pytest.raises(ValueError, match="lists its own data files: drop --data_file_paths"):
        notes(dataset_name="data_config/mix.yml", data_file_paths="a.jsonl")
    with pytest.raises(ValueError, match="lists its own data files"):
        notes(dataset_name="mix.yaml", image_folders="imgs/")
    with pytest.raises(ValueError, match="--image_root x and --image_folders y both"):
        notes(data_file_paths="a.jsonl", image_folders="y", image_root="x")


def test_without_data_flags_the_entrypoint_says_what_is_needed(tmp_path: Path) -> None:
    from geo_r.grpo_jsonl import main

    with pytest.raises(
        SystemExit, match=r"--data_file_paths .* or --dataset_name \(a data_config/\*.yaml mixture\)"
    ):
        main(["--output_dir", str(tmp_path), "--model_name_or_path", "m", "--report_to", "none"])


def test_help_explains_the_mixture_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from geo_r.grpo_jsonl import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--image_root" in help_text
    for needle in (
        "json_path, optional image_folder and sampling_strategy",
        "random:N, or P% in place of N",
        "that give no image_folder of their own",
    ):
        assert needle in help_text, needle


def test_image_root_is_the_folder_of_data_file_paths(tmp_path: Path) -> None:
    """Geo-R's --image_root with --data_file_paths (no --image_folders): the folder of every file."""
    from data_fixtures import make_jpeg, write_jsonl
    from geo_r.data import load_records

    make_jpeg(tmp_path / "imgs" / "0.jpg")
    data = write_jsonl(
        tmp_path / "d.jsonl", [{"image": "0.jpg", "problem": "Where?", "solution": [1.5, 2.5]}]
    )
    script = SimpleNamespace(image_folders="", image_root=str(tmp_path / "imgs"))
    records, _ = load_records(
        str(data), script.image_folders or script.image_root or ""
    )  # as grpo_jsonl.main
    assert records[0].images == [str(tmp_path / "imgs" / "0.jpg")] and (records[0].lat, records[0].lon) == (
        1.5,
        2.5,
    )


# ---------------------------------------------------------------- the Must-show run


def _geo_r_file(toy_jsonl: Path, out: Path, as_text: bool) -> dict[int, tuple[float, float]]:
    """Rewrite a toy set in Geo-R's released layout (image, problem, solution; no id, no chain fields):
    ``solution`` as ``[lat, lon]`` or as the text ``"(lat, lon)"``. Returns line -> true (lat, lon)."""
    truth, lines = {}, []
    for line_no, row in enumerate(map(json.loads, toy_jsonl.read_text().splitlines()), start=1):
        solution = f"({row['lat']}, {row['lon']})" if as_text else [row["lat"], row["lon"]]
        lines.append(
            json.dumps(
                {"image": row["image"], "problem": "Where was this photo taken?", "solution": solution}
            )
        )
        truth[line_no] = (row["lat"], row["lon"])
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return truth


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    tensors: dict = {}
    for f in sorted(path.glob("*.safetensors")):
        tensors.update(load_file(f))
    return tensors


@pytest.mark.slow
def test_geo_r_data_through_a_yaml_mixture_trains_under_the_vlmr1_flags(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch

    from geo_r.data.mixture import load_mixture
    from geo_r.demo.toy_data import write_toy_dataset
    from geo_r.prompts import render_answer
    from geo_r.rewards import REWARD_FUNCS

    a_truth = _geo_r_file(
        write_toy_dataset(tmp_path / "a", n=16, seed=3), tmp_path / "geo_a.jsonl", as_text=False
    )
    b_truth = _geo_r_file(
        write_toy_dataset(tmp_path / "b", n=8, seed=4), tmp_path / "geo_b.jsonl", as_text=True
    )
    truth = {f"geo_a.jsonl:{n}": c for n, c in a_truth.items()} | {
        f"geo_b.jsonl:{n}": c for n, c in b_truth.items()
    }
    config = tmp_path / "geo_mix.yaml"
    config.write_text(
        "datasets:\n"
        f"  - json_path: {tmp_path / 'geo_a.jsonl'}\n"
        f"    image_folder: {tmp_path / 'a' / 'images'}\n"
        "    sampling_strategy: random:50%\n"
        f"  - json_path: {tmp_path / 'geo_b.jsonl'}\n"  # images from --image_root
        "    sampling_strategy: first:4\n",
        encoding="utf-8",
    )
    image_root = str(tmp_path / "b" / "images")
    expected, _ = load_mixture(config, image_root=image_root, seed=42, check_images=False)
    expected_ids = [r.id for r in expected]
    assert len(expected_ids) == 12 and expected_ids[8:] == [f"geo_b.jsonl:{n}" for n in range(1, 5)]

    out, probe = tmp_path / "run", tmp_path / "probe.jsonl"
    vlmr1_flags = [  # VLM-R1's run_grpo_rec.sh as written, but for the data flags and the sizes set below
        "--use_vllm", "False", "--resume_from_checkpoint", "True",
        "--is_reward_customized_from_vlm_module", "True", "--task_type", "rec",
        "--gradient_checkpointing", "true", "--logging_steps", "1", "--num_train_epochs", "2", "--bf16",
        "--attn_implementation", "flash_attention_2", "--run_name", "tiny-geo-r-mixture", "--data_seed", "42",
        "--save_steps", "100", "--beta", "0.04", "--report_to", "wandb",
        "--reward_funcs", "accuracy", "format", f"{Path(__file__).resolve()}:coordinates_probe",
        "--max_prompt_length", "512", "--torch_dtype", "bfloat16", "--save_only_model", "true",
    ]  # fmt: skip
    sizes = ["--max_steps", "2", "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "2",
             "--num_generations", "4", "--max_completion_length", "16", "--learning_rate", "1e-3",
             "--max_pixels", "12544", "--min_pixels", "3136", "--seed", "0"]  # fmt: skip
    data = ["--dataset-name", str(config), "--image_root", image_root]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "", PROBE_ENV: str(probe)}  # fmt: skip
    env.pop("WANDB_API_KEY", None)
    cmd = [sys.executable, str(ENTRY), "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out),
           *data, *vlmr1_flags, *sizes]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-8000:]

    # the mixture was read as written: per-entry counts in the log
    assert "random:50% -> 8 of 16 record(s)" in log and "first:4 -> 4 of 8 record(s)" in log
    for needle in ("--task_type rec ignored", "--report_to wandb dropped", "no checkpoint-* in"):
        assert needle in log, needle
    # the entrypoint logs the parsed ground truth of the first records: the same draw as in this process
    logged = re.findall(r"ground truth (.+?): lat=(\S+) lon=(\S+)", log)
    assert [i for i, _, _ in logged] == expected_ids[:3]
    assert all((float(lat), float(lon)) == truth[i] for i, lat, lon in logged)

    # every row the rewards were given is a drawn record, with the coordinates of its Geo-R `solution`
    seen = [json.loads(line) for line in probe.read_text().splitlines()]
    rows = [(i, lat, lon, sol) for call in seen for i, lat, lon, sol in zip(*call.values(), strict=True)]
    assert len(rows) == 2 * 2 * 8, "2 steps x 2 micro-batches x 8 completions"
    assert {i for i, *_ in rows} <= set(expected_ids) and len({i for i, *_ in rows}) >= 2
    assert all((lat, lon) == truth[i] for i, lat, lon, _ in rows)
    accuracy = REWARD_FUNCS["accuracy"]  # what --reward_funcs accuracy runs: the distance reward
    for i, lat, lon, sol in rows[:4]:
        assert json.loads(sol) == list(truth[i]) if i.startswith("geo_a") else sol == f"({lat}, {lon})"
        exact = render_answer("France", "Ile-de-France", "Paris", lat, lon)
        off = render_answer("France", "Ile-de-France", "Paris", max(-90.0, lat - 10.0), lon)
        scores = accuracy(prompts=[None, None], completions=[exact, off], lat=[lat, lat], lon=[lon, lon])
        assert scores[0] == pytest.approx(1.0, abs=1e-4) and scores[1] < 0.9

    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    logs = [e for e in state["log_history"] if "reward" in e]
    assert logs and all(
        f"rewards/{n}/mean" in e for e in logs for n in ("distance", "format", "coordinates_probe")
    )
    before, after = _weights(tiny_model_dir), _weights(out)
    changed = [k for k in before if not torch.equal(before[k].to(after[k].dtype), after[k])]
    assert after and len(changed) > len(before) // 2, f"only {len(changed)}/{len(before)} tensors changed"
