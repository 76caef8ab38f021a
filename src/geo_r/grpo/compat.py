"""What Geo-R does with the settings of a VLM-R1 / Geo-R command line, said out loud.

``reconcile`` is called once after parsing: it honours what can be honoured (``--torch_dtype`` becomes
``dtype``) and returns one message per setting that is renamed or ignored, with the reason. ``report_to wandb`` without a usable wandb falls back
to no tracker with a warning rather than crashing a multi-node job at its first log line.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from geo_r.data.mixture import is_mixture_config
from geo_r.grpo.arguments import GeoModelArguments, GeoScriptArguments, VLMR1CompatArguments


def _wandb_usable() -> str | None:
    """None when wandb can log; otherwise the reason it cannot."""
    if importlib.util.find_spec("wandb") is None:
        return "wandb is not installed (pip install 'geo-r[wandb]')"
    if os.environ.get("WANDB_MODE", "").lower() in {"offline", "disabled", "dryrun"}:
        return None
    if os.environ.get("WANDB_API_KEY"):
        return None
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    if netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"):
        return None
    return "wandb is not logged in (run 'wandb login' or set WANDB_API_KEY, or WANDB_MODE=offline)"


def reconcile(
    script: GeoScriptArguments,
    model: GeoModelArguments,
    compat: VLMR1CompatArguments,
    training: Any,
) -> list[str]:
    """Apply the compatibility rules in place and return one message per renamed or ignored setting."""
    notes: list[str] = []
    if compat.torch_dtype is not None:
        if model.dtype is not None and model.dtype != compat.torch_dtype:
            raise ValueError(f"--torch_dtype {compat.torch_dtype} contradicts --dtype {model.dtype}; pass one of them")
        model.dtype = compat.torch_dtype
        notes.append(f"--torch_dtype {compat.torch_dtype}: used as --dtype (transformers 5 name); the model loads in it.")
    if compat.max_prompt_length is not None:
        notes.append(
            f"--max_prompt_length {compat.max_prompt_length} ignored: TRL 1.16 removed it and prompts are never "
            f"truncated (cutting image tokens breaks the model). Image tokens are bounded by --max_pixels "
            f"{script.max_pixels}."
        )
    if compat.task_type is not None:
        notes.append(
            f"--task_type {compat.task_type} ignored: Geo-R asks the Chain-of-Region question "
            "(geo_r.prompts.DEFAULT_QUESTION, or a record's own human turn) and scores it with --reward_funcs."
        )
    if compat.is_reward_customized_from_vlm_module:
        notes.append(
            "--is_reward_customized_from_vlm_module True ignored: Geo-R has one reward registry; 'accuracy' is the "
            "haversine distance reward and 'format' the strict answer-contract check."
        )
    if compat.reward_method is not None:
        notes.append(f"--reward_method {compat.reward_method} ignored: coordinates are scored by the distance reward.")
    if compat.max_anyres_num is not None:
        notes.append(f"--max_anyres_num {compat.max_anyres_num} ignored: it is InternVL tiling; Geo-R trains Qwen-VL.")
    if compat.arrow_cache_dir is not None:
        if script.data_cache_dir is None:
            script.data_cache_dir = compat.arrow_cache_dir
            notes.append(f"--arrow_cache_dir {compat.arrow_cache_dir}: used as --data_cache_dir (the training-data "
                         "cache folder; unused in VLM-R1).")
        else:
            notes.append(f"--arrow_cache_dir ignored: --data_cache_dir {script.data_cache_dir} is the cache folder.")
    if is_mixture_config(script.dataset_name):
        if script.data_file_paths or script.image_folders:
            raise ValueError(
                f"--dataset_name {script.dataset_name} is a dataset mixture that lists its own data files: drop "
                "--data_file_paths / --image_folders (give an entry its images with image_folder:, or all entries "
                "with --image_root), or drop the yaml and list the files with --data_file_paths a.jsonl:b.jsonl"
            )
    elif script.dataset_name is not None:
        notes.append(f"--dataset_name {script.dataset_name} ignored: data comes from --data_file_paths.")
    if script.image_root and script.image_folders:
        raise ValueError(
            f"--image_root {script.image_root} and --image_folders {script.image_folders} both give image folders; "
            "pass one of them"
        )
    if getattr(training, "use_vllm", False) and importlib.util.find_spec("vllm") is None:
        raise ValueError(
            "--use_vllm True: vLLM is not installed in this environment (bash setup.sh --gpu installs vLLM 0.31 on "
            "a CUDA machine); drop the flag to generate with transformers"
        )
    notes += _legacy_trainer_flags(compat, training)
    notes += _model_flags(model, training)
    report_to = list(training.report_to or [])
    if "wandb" in report_to and (why := _wandb_usable()) is not None:
        training.report_to = [r for r in report_to if r != "wandb"]
        notes.append(f"--report_to wandb dropped: {why}. Metrics still go to trainer_state.json and the console.")
    return notes


_IGNORED_LEGACY = {
    "vllm_device": "TRL 1.16 places vLLM itself (--vllm_mode colocate|server)",
    "vllm_dtype": "vLLM runs in the dtype the model is loaded in (--dtype)",
    "vllm_enable_prefix_caching": "TRL 1.16 configures vLLM's prefix caching itself",
    "dataset_config": "it selects a hub dataset; Geo-R reads jsonl/json files",
    "dataset_train_split": "it selects a hub split; every record trains (hold some out with --val_split_ratio)",
    "dataset_test_split": "it selects a hub split; the validation set comes from --val_split_ratio",
    "ignore_bias_buffers": "it is a DDP workaround for causal-LM bias buffers, which Qwen-VL does not have",
}


def _legacy_trainer_flags(compat: VLMR1CompatArguments, training: Any) -> list[str]:
    """Old TRL / VLM-R1 trainer flags: renamed ones are applied, the rest explained."""
    notes = []
    for name, why in _IGNORED_LEGACY.items():
        if getattr(compat, name) is not None:
            notes.append(f"--{name} {getattr(compat, name)} ignored: {why}.")
    if compat.vllm_guided_decoding_regex is not None:
        training.vllm_structured_outputs_regex = compat.vllm_guided_decoding_regex
        notes.append("--vllm_guided_decoding_regex: used as --vllm_structured_outputs_regex (TRL 1.16 name).")
    if compat.gradient_checkpointing_use_reentrant is not None:
        kwargs = dict(training.gradient_checkpointing_kwargs or {})
        kwargs["use_reentrant"] = bool(compat.gradient_checkpointing_use_reentrant)
        training.gradient_checkpointing_kwargs = kwargs
        notes.append(
            f"--gradient_checkpointing_use_reentrant {compat.gradient_checkpointing_use_reentrant}: used as "
            f"--gradient_checkpointing_kwargs {kwargs}."
        )
    return notes


def _model_flags(model: GeoModelArguments, training: Any) -> list[str]:
    """ModelConfig flags the loader does not implement: refused (quantization, revisions) or explained."""
    if model.load_in_8bit or model.load_in_4bit:
        raise ValueError(
            "--load_in_8bit / --load_in_4bit: quantized (QLoRA) loading is not supported by Geo-R's model loader; "
            "train LoRA on a bf16 model (--use_peft true --bf16) instead"
        )
    if model.model_revision not in (None, "", "main"):
        raise ValueError(
            f"--model_revision {model.model_revision}: not supported, since the model and its processor must come "
            "from one folder; download that revision (huggingface-cli download --revision ...) and pass the folder"
        )
    notes = []
    if model.bnb_4bit_quant_type != "nf4" or model.use_bnb_nested_quant or model.bnb_4bit_quant_storage:
        notes.append("--bnb_4bit_* / --use_bnb_nested_quant ignored: they only apply to quantized loading.")
    if getattr(training, "trust_remote_code", False):
        notes.append(
            "--trust_remote_code has no effect on the policy: Qwen-VL's classes ship with transformers and the model "
            "is loaded without remote code."
        )
    return notes
