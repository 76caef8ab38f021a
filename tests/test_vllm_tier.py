"""The vLLM tier: vLLM's CPU build (``vllm-cpu``) generating for real on the small tiny model.

* ``geo-r eval --backend vllm``: greedy answers equal the HF backend's token for token (float32), K samples,
  resume, pixel limits reaching vLLM's processor, and torchrun x2 data-parallel shards;
* vision special tokens blocked by vLLM's ``logit_bias`` on a model that would otherwise emit only them;
* the policy-to-engine weight sync used for colocated rollouts on CPU (:mod:`geo_r.trainer.vllm_colocate`);
* TRL's colocated vLLM rollouts through GeoGRPOTrainer (``--use_vllm true --vllm_mode colocate``), with the group
  filter's extra rollouts and vision reuse on, in one process and under torchrun x2.

Run in the vLLM venv (``bash setup.sh --vllm-venv`` -> ``.venv-vllm``; run_scripts/run_tests.sh does). Elsewhere
the module skips, unless ``GEO_R_REQUIRE_VLLM=1`` (set by run_tests.sh for this tier): then a missing or broken
vLLM is a failure. One engine serves every in-process test (``geo_r.eval.vllm_backend.shared_engine``); each
subprocess test starts its own (tens of seconds each), so the tier keeps to a few of them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REQUIRED = os.environ.get("GEO_R_REQUIRE_VLLM") == "1"
# In-process engines (no engine-core subprocess: pytest's process has no __main__ guard to re-import) with a
# 1 GiB KV cache each, set before vLLM is imported; subprocesses inherit them.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def _vllm_missing() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (the vLLM venv: bash setup.sh --vllm-venv)"
    try:
        import torchvision  # noqa: F401  (vLLM's Qwen2-VL module needs transformers' torchvision processor)
        import vllm  # noqa: F401
    except Exception as exc:  # a CPU torch next to PyPI's CUDA torchvision fails here
        return f"vllm does not import: {type(exc).__name__}: {exc}"
    return None


MISSING = _vllm_missing()
if MISSING and REQUIRED:
    raise RuntimeError(f"GEO_R_REQUIRE_VLLM=1 but {MISSING}")
pytestmark = [pytest.mark.vllm, pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]

REPO = Path(__file__).resolve().parents[1]
ENTRY = REPO / "src" / "geo_r" / "grpo_jsonl.py"
RECORDER = f"{REPO / 'tests' / 'rewards_for_tests.py'}:record_completion_ids"
# Outside the small model's own limits (3136..50176 in its folder): vLLM must take these from the request side.
MIN_PX, MAX_PX = 6272, 100352
MAX_NEW = 16
SEED = 5


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(extra)
    return env


def _run(cmd: list[str], timeout: int = 900, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=REPO, env=_env(**env), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.fixture(scope="module")
def small_model(tiny_model_builder) -> Path:
    return tiny_model_builder(size="small")


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory, make_images) -> tuple[Path, Path]:
    from vllm_fixtures import write_photo_set

    return write_photo_set(tmp_path_factory.mktemp("vllm-photos"), make_images)


def _eval_flags(model: Path, photo_set: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    jsonl, images = photo_set
    return ["--model_name_or_path", str(model), "--data_file_paths", str(jsonl), "--image_folders", str(images),
            "--output_dir", str(out), "--max_new_tokens", str(MAX_NEW), "--min_pixels", str(MIN_PX),
            "--max_pixels", str(MAX_PX), "--torch_dtype", "float32", "--seed", str(SEED), "--batch_size", "4",
            "--no_progress", *extra]


@pytest.fixture(scope="module")
def greedy_runs(small_model, photo_set, tmp_path_factory) -> dict[str, Path]:
    """``geo-r eval`` (in-process) with --backend hf and --backend vllm on the same photos and settings."""
    from geo_r.eval.cli import main as eval_main

    root = tmp_path_factory.mktemp("vllm-eval")
    for backend in ("hf", "vllm"):
        assert eval_main(_eval_flags(small_model, photo_set, root / backend, "--backend", backend)) == 0
    return {"hf": root / "hf", "vllm": root / "vllm"}


@pytest.fixture(scope="module")
def generator(small_model, greedy_runs):
    """The VLLMGenerator with the eval run's settings: it reuses that run's engine (one per process)."""
    from geo_r.eval.generate import GenerationSettings
    from geo_r.eval.vllm_backend import VLLMGenerator

    gen = VLLMGenerator(str(small_model), GenerationSettings(max_new_tokens=MAX_NEW, seed=SEED),
                        min_pixels=MIN_PX, max_pixels=MAX_PX, dtype="float32")
    return gen


# ------------------------------------------------------------------------------------------ geo-r eval


def test_engine_runs_on_vllms_cpu_build_in_float32(generator) -> None:
    import vllm

    from geo_r.eval.vllm_backend import vllm_on_cpu

    config = generator.llm.llm_engine.model_config
    assert str(config.dtype) == "torch.float32" and config.enforce_eager
    assert vllm.__version__.startswith("0.32") and vllm_on_cpu()


def test_greedy_vllm_answers_equal_the_hf_backend_token_for_token(greedy_runs) -> None:
    """Greedy float32 decoding on both backends: the same completions, so the same parsed predictions and the
    same metrics (acc@k, distances, parse rate)."""
    hf, vl = (_lines(greedy_runs[b] / "predictions.jsonl") for b in ("hf", "vllm"))
    assert [r["id"] for r in hf] == [r["id"] for r in vl] and len(vl) == 6
    assert all(r["completion"] for r in vl), "vLLM returned empty completions"
    assert [r["completion"] for r in vl] == [r["completion"] for r in hf]
    strip = ("seconds", "backend", "mode", "command", "versions", "device", "attn_implementation")
    metrics = {b: json.loads((greedy_runs[b] / "metrics.json").read_text()) for b in ("hf", "vllm")}
    for m in metrics.values():
        for key in strip:
            m.get("settings", {}).pop(key, None)
    assert metrics["vllm"] == metrics["hf"]
    settings = json.loads((greedy_runs["vllm"] / "run_config.json").read_text())
    assert settings["min_pixels"] == MIN_PX and settings["max_pixels"] == MAX_PX


def test_pixel_limits_reach_vllm_as_image_tokens_equal_to_the_hf_processor(generator, photo_set) -> None:
    """Limits outside the checkpoint folder's own (min and max): vLLM's prompt holds exactly as many image tokens
    as the HF processor makes under the same limits, for every resize path."""
    from vllm import SamplingParams

    from geo_r.data import load_records
    from geo_r.eval.generate import load_image, prompt_texts
    from geo_r.eval.vllm_backend import build_requests

    records, _ = load_records(str(photo_set[0]), str(photo_set[1]))
    requests = build_requests(generator.processor, records, factor=generator.factor, min_pixels=MIN_PX,
                              max_pixels=MAX_PX)
    outputs = generator.llm.generate(requests, SamplingParams(max_tokens=1), use_tqdm=False)
    pad = generator.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    vllm_counts = [out.prompt_token_ids.count(pad) for out in outputs]
    hf_counts = []
    for record in records:
        enc = generator.processor(text=prompt_texts(generator.processor, [record]),
                                  images=[load_image(p) for p in record.images], return_tensors="pt")
        hf_counts.append(int((enc["input_ids"] == pad).sum()))
    assert vllm_counts == hf_counts
    assert min(hf_counts) >= MIN_PX // 28**2 and max(hf_counts) <= MAX_PX // 28**2
    assert max(hf_counts) > 50176 // 28**2  # above the folder's own max: the request's limits won


def test_num_samples_and_resume(small_model, photo_set, generator, tmp_path) -> None:
    """--num_samples 3: a greedy answer and 3 seeded samples per photo; a run cut to 2 lines and resumed
    regenerates the rest identically (per-image seeds: independent of batching)."""
    from geo_r.eval.cli import main as eval_main

    out = tmp_path / "k3"
    flags = _eval_flags(small_model, photo_set, out, "--backend", "vllm", "--num_samples", "3",
                        "--temperature", "1.0")
    assert eval_main(flags) == 0
    full = _lines(out / "predictions.jsonl")
    assert len(full) == 6 and all(len(r["samples"]) == 3 for r in full)
    assert any(len(set(r["samples"])) > 1 for r in full), "3 samples at temperature 1 were all equal"
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"greedy", "medoid", "vote"} <= set(metrics["aggregates"])
    lines = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (out / "predictions.jsonl").write_text("".join(lines[:2]), encoding="utf-8")
    assert eval_main(flags) == 0
    resumed = _lines(out / "predictions.jsonl")
    assert resumed == full
    settings = json.loads((out / "metrics.json").read_text())["settings"]
    assert settings["predictions_reused_from_earlier_runs"] == 2


def test_vision_tokens_blocked_and_weights_reloaded_into_the_engine(small_model, generator, photo_set,
                                                                    tmp_path) -> None:
    """The engine takes a vision-biased model's weights by the in-place reload used for colocated GRPO on CPU:
    without a logit bias it then emits only vision tokens, the backend's -100 bias removes them all, and the
    result equals HF generate with those tokens suppressed. The original weights are restored at the end."""
    import torch
    from vllm import SamplingParams

    from geo_r.data import load_records
    from geo_r.eval.generate import GenerationSettings, HFGenerator
    from geo_r.eval.vllm_backend import build_requests
    from geo_r.models.loading import load_model
    from geo_r.trainer.vllm_colocate import reload_into_engine
    from vllm_fixtures import write_vision_biased_model

    class Weights:  # what reload_into_engine reads of TRL's VLLMGeneration: the engine and named parameters
        def __init__(self, llm, folder: Path) -> None:
            self.llm = llm
            self.model = load_model(folder, dtype=torch.float32)

        def _iter_named_params(self):
            for name, param in self.model.named_parameters():
                yield name, param.data

    biased = tmp_path / "biased"
    blocked = write_vision_biased_model(small_model, biased)
    records, _ = load_records(str(photo_set[0]), str(photo_set[1]))
    requests = build_requests(generator.processor, records, factor=generator.factor, min_pixels=MIN_PX,
                              max_pixels=MAX_PX)
    before = generator.generate(records)
    try:
        reload_into_engine(Weights(generator.llm, biased))
        free = generator.llm.generate(requests, SamplingParams(max_tokens=MAX_NEW, temperature=0.0),
                                      use_tqdm=False)
        assert all(set(o.outputs[0].token_ids) <= set(blocked) for o in free)  # the reload took effect
        params = SamplingParams(**generator.sampling, seed=0)
        params.skip_special_tokens = False
        guarded = generator.llm.generate(requests, params, use_tqdm=False)
        ids = [list(o.outputs[0].token_ids) for o in guarded]
        assert all(ids) and not any(set(row) & set(blocked) for row in ids)
        hf = HFGenerator(str(biased), GenerationSettings(max_new_tokens=MAX_NEW, seed=SEED), min_pixels=MIN_PX,
                         max_pixels=MAX_PX, dtype="float32")
        assert generator.generate(records) == hf.generate(records)
    finally:
        reload_into_engine(Weights(generator.llm, small_model))
    assert generator.generate(records) == before


@pytest.mark.distributed
def test_torchrun_two_ranks_shard_and_merge(small_model, photo_set, greedy_runs, tmp_path, free_port) -> None:
    """torchrun x2: each rank its own engine (external_launcher, tensor parallel 1) on its shard; rank 0 merges.
    The merged predictions equal the single-process run's."""
    out = tmp_path / "ddp"
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port),
          "-m", "geo_r.cli", "eval", *_eval_flags(small_model, photo_set, out, "--backend", "vllm")])
    merged = _lines(out / "predictions.jsonl")
    single = _lines(greedy_runs["vllm"] / "predictions.jsonl")
    assert [r["completion"] for r in merged] == [r["completion"] for r in single]
    assert not list(out.glob("predictions.rank*.jsonl"))
    assert json.loads((out / "metrics.json").read_text())["settings"]["world_size"] == 2


# ------------------------------------------------------------------------------------------ GRPO rollouts


@pytest.fixture(scope="module")
def biased_model(small_model, tmp_path_factory) -> tuple[Path, list[int]]:
    from vllm_fixtures import write_vision_biased_model

    folder = tmp_path_factory.mktemp("vllm-biased") / "model"
    return folder, write_vision_biased_model(small_model, folder)


@pytest.fixture(scope="module")
def toy_set(tmp_path_factory) -> tuple[str, str]:
    from geo_r.demo.toy_data import write_toy_dataset

    root = tmp_path_factory.mktemp("vllm-toy")
    jsonl = write_toy_dataset(root, n=12, seed=1)  # 5 of the 12 photos lie south of the equator
    return str(jsonl), str(root / "images")


def _grpo(model: Path, toy_set: tuple[str, str], out: Path, nproc: int, port: int) -> list[dict]:
    """Two GRPO steps with colocated vLLM rollouts; returns the step logs. Each step rolls out 4 groups of 4 per
    process: 8 of the 12 photos in two steps, so at least one of the 5 southern ones, whose group scores flat (the
    recorder reward) and is refilled by an extra rollout."""
    launcher = [sys.executable] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", str(port)]
    _run([*launcher, str(ENTRY), "--model_name_or_path", str(model), "--data_file_paths", toy_set[0],
          "--image_folders", toy_set[1], "--output_dir", str(out), "--max_steps", "2",
          "--per_device_train_batch_size", "16", "--num_generations", "4", "--max_completion_length", "8",
          "--learning_rate", "1e-3", "--logging_steps", "1", "--max_pixels", "12544", "--min_pixels", "3136",
          "--seed", "0", "--reward_funcs", RECORDER, "--report_to", "none", "--save_strategy", "no",
          "--torch_dtype", "float32", "--use_vllm", "true", "--vllm_mode", "colocate",
          "--group_filter", "zero_std", "--group_filter_max_tries", "2", "--vision_reuse", "true"],
         GEO_R_TEST_COMPLETION_LOG=str(out.parent / "completions.jsonl"))
    return [e for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]


def _check_colocated_run(logs: list[dict], out: Path, model: Path, blocked: list[int], nproc: int) -> None:
    import torch
    from safetensors.torch import load_file

    assert len(logs) == 2
    for e in logs:
        assert "rewards/record_completion_ids/mean" in e and "geo/parse_rate" in e
        assert "sampling/sampling_logp_difference/mean" in e  # TRL's vLLM path, not HF generate
        assert e["vision/encodings"] > 0 and "group_filter/extra_rollouts" in e
    assert any(e["group_filter/extra_rollouts"] > 0 for e in logs), "no extra rollout was drawn"
    completions = _lines_raw(out.parent / "completions.jsonl")
    extra = sum(e["group_filter/extra_completions"] for e in logs)
    # every rollout (2 steps x 16 rows per process), extra ones included, went through the recorder
    assert len(completions) == 2 * 16 * nproc + extra
    assert all(row for row in completions) and not any(set(row) & set(blocked) for row in completions)
    before, after = load_file(model / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before), "training changed no weight"


def _lines_raw(path: Path) -> list[list[int]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.mark.slow
def test_grpo_colocated_vllm_one_process(biased_model, toy_set, tmp_path, free_port) -> None:
    """The vision-biased model would sample only vision tokens (TRL's HF path blocks just the image pad): every
    rollout, the group filter's extra ones too, comes from vLLM with all of them blocked by logit_bias."""
    model, blocked = biased_model
    out = tmp_path / "run"
    _check_colocated_run(_grpo(model, toy_set, out, 1, free_port), out, model, blocked, nproc=1)


@pytest.mark.slow
@pytest.mark.distributed
def test_grpo_colocated_vllm_torchrun_two_processes(biased_model, toy_set, tmp_path, free_port) -> None:
    model, blocked = biased_model
    out = tmp_path / "run"
    _check_colocated_run(_grpo(model, toy_set, out, 2, free_port), out, model, blocked, nproc=2)
