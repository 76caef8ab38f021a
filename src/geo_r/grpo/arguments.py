"""Command-line arguments of the GRPO entrypoint, beside TRL's ``GRPOConfig`` and ``ModelConfig``.

Every flag here has a help text, so ``python src/geo_r/grpo_jsonl.py --help`` documents the whole run. The
trainer's own settings (vision freezing and reuse, group filtering) are fields of
:class:`geo_r.trainer.config.GeoGRPOConfig`, which the entrypoint parses in place of TRL's ``GRPOConfig``.
``VLMR1CompatArguments`` holds flags that VLM-R1 / Geo-R scripts pass but that have no direct meaning in
Geo-R: they are accepted so those scripts run unchanged, and each one is honoured, renamed or ignored with
a warning that says why (see :mod:`geo_r.grpo.compat`). Nothing is silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from geo_r.data.candidates import CANDIDATES_HELP, NUM_CANDIDATES_HELP, RADIUS_HELP
from geo_r.defaults import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from geo_r.geo.candidates import DEFAULT_NUM_CANDIDATES, DEFAULT_RADIUS_KM
from geo_r.models.arguments import GeoModelArguments

__all__ = ["GeoModelArguments", "GeoScriptArguments", "VLMR1CompatArguments"]

DEFAULT_REWARD_FUNCS = ["format", "distance", "region"]


@dataclass
class GeoScriptArguments:
    """Where the data comes from, how prompts and images are prepared, and which rewards score the answers."""

    data_file_paths: str | None = field(
        default=None,
        metadata={
            "help": "Training data: one or more .jsonl/.json files separated by ':' (e.g. a.jsonl:b.jsonl). Each "
            "line is one photo in the Geo-R contract (image, lat, lon, optional country/region/city, optional "
            "conversations) or a VLM-R1 / Geo-R record. See README 'Data'."
        },
    )
    image_folders: str = field(
        default="",
        metadata={
            "help": "Image folders paired by position with --data_file_paths, separated by ':' (e.g. imgs_a/:imgs_b/). "
            "A record's 'image' path is relative to its folder."
        },
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A dataset mixture yaml (VLM-R1 / Geo-R data_config format, e.g. data_config/geo_example.yaml): "
            "'datasets:' entries with json_path, optional image_folder and sampling_strategy (all, first:N, "
            "end:N, random:N, or P%% in place of N; random is seeded with --data_seed, else --seed). Used "
            "instead of --data_file_paths. Any other value (VLM-R1's scripts pass '--dataset-name "
            "this_is_not_used') is ignored with a warning."
        },
    )
    image_root: str | None = field(
        default=None,
        metadata={
            "help": "Geo-R's grpo_rec.py flag: the image folder of --dataset_name yaml entries that give no "
            "image_folder of their own (default: each data file's folder). With --data_file_paths it is the "
            "image folder of every file, as a single --image_folders would be (do not pass both)."
        },
    )
    val_split_ratio: float = field(
        default=0.0,
        metadata={
            "help": "Fraction of the records held out as a validation set (split with --data_seed, else --seed). It "
            "is evaluated when --eval_strategy is 'steps' or 'epoch'."
        },
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: list(DEFAULT_REWARD_FUNCS),
        metadata={
            "help": "Reward functions by name, from geo_r.rewards.REWARD_FUNCS: format, distance (aliases accuracy, "
            "haversine), region, geo_r_paper, candidate (the answer's 'Candidate: k' line; needs --candidates or "
            "records with a 'candidates' field). Weighted with --reward_weights; each is logged as "
            "rewards/<name>/mean."
        },
    )
    max_pixels: int = field(
        default=DEFAULT_MAX_PIXELS,
        metadata={
            "help": "Largest image area in pixels after resizing (the processor's longest_edge). Bounds the image "
            "tokens per photo (401408 -> at most 512 on Qwen2.5-VL). Used by every processor of the run and "
            "written into saved checkpoints, so vLLM and evaluation see the same tokens."
        },
    )
    min_pixels: int = field(
        default=DEFAULT_MIN_PIXELS,
        metadata={"help": "Smallest image area in pixels after resizing (the processor's shortest_edge)."},
    )
    question: str | None = field(
        default=None,
        metadata={
            "help": "Replace the default Chain-of-Region question (geo_r.prompts.DEFAULT_QUESTION) for records "
            "without a human turn. Records with a human turn keep their own text."
        },
    )
    replace_questions: bool = field(
        default=False,
        metadata={
            "help": "Ask every record the Chain-of-Region question (or --question), even records that bring their "
            "own human turn or Geo-R 'problem' text, which may not ask for the answer contract the format reward "
            "checks."
        },
    )
    candidates: str | None = field(default=None, metadata={"help": CANDIDATES_HELP})
    num_candidates: int = field(default=DEFAULT_NUM_CANDIDATES, metadata={"help": NUM_CANDIDATES_HELP})
    candidate_radius_km: float = field(default=DEFAULT_RADIUS_KM, metadata={"help": RADIUS_HELP})
    skip_invalid: bool = field(
        default=False,
        metadata={
            "help": "Drop invalid records (malformed lines, missing images, coordinates out of range) and count them "
            "in the log, instead of stopping with a list of the problems before any model is loaded."
        },
    )
    check_images: bool = field(
        default=True,
        metadata={
            "help": "Check before training that every image exists and has a readable header. Turn off only for "
            "very large sets already checked with 'geo-r validate'."
        },
    )
    derive_chains: bool = field(
        default=True,
        metadata={
            "help": "Fill missing country / region / city fields offline from lat/lon (GeoNames reverse geocoding), "
            "so the region reward has a true chain for every record."
        },
    )
    log_ground_truth: int = field(
        default=3,
        metadata={"help": "Log the parsed ground truth (id, lat, lon, chain) of the first N training records."},
    )


@dataclass
class VLMR1CompatArguments:
    """Flags of VLM-R1's and Geo-R's launch scripts that Geo-R accepts and handles explicitly."""

    torch_dtype: str | None = field(
        default=None,
        metadata={
            "help": "VLM-R1 spelling of --dtype (transformers 5 renamed it): the model is loaded in this dtype "
            "(bfloat16, float16, float32, auto). Unlike VLM-R1, which always loads bf16, the dtype asked for is used."
        },
    )
    max_prompt_length: int | None = field(
        default=None,
        metadata={
            "help": "Ignored with a warning: TRL 1.16 removed it. Prompts are never truncated (cutting image tokens "
            "breaks the model); bound the prompt with --max_pixels instead."
        },
    )
    task_type: str | None = field(
        default=None,
        metadata={
            "help": "Ignored with a warning: in VLM-R1 it picks a task question template and reward (e.g. 'rec' = "
            "bounding boxes). Geo-R always asks the Chain-of-Region question and uses --reward_funcs."
        },
    )
    is_reward_customized_from_vlm_module: bool = field(
        default=False,
        metadata={
            "help": "Ignored with a warning: in VLM-R1 it routes accuracy/format to a model module's REC rewards. "
            "Geo-R has one registry: accuracy -> distance (haversine), format -> the answer-contract check."
        },
    )
    reward_method: str | None = field(
        default=None,
        metadata={
            "help": "Ignored with a warning: VLM-R1's per-file accuracy method (default, mcq, yes_no, llm, map, ...). "
            "Geo-R scores coordinates with the distance reward for every file."
        },
    )
    max_anyres_num: int | None = field(
        default=None,
        metadata={"help": "Ignored with a warning: InternVL tiling only; Geo-R trains Qwen-VL models."},
    )
    arrow_cache_dir: str | None = field(
        default=None,
        metadata={"help": "Ignored with a warning: unused in VLM-R1 too; Geo-R builds its dataset in memory."},
    )
    vllm_device: str | None = field(
        default=None,
        metadata={"help": "Ignored with a warning (old TRL): TRL 1.16 places vLLM itself, see --vllm_mode colocate|server."},
    )
    vllm_dtype: str | None = field(
        default=None,
        metadata={"help": "Ignored with a warning (old TRL): vLLM runs in the dtype the model is loaded in (--dtype)."},
    )
    vllm_enable_prefix_caching: bool | None = field(
        default=None,
        metadata={"help": "Ignored with a warning (old TRL): TRL 1.16 configures vLLM's prefix caching itself."},
    )
    vllm_guided_decoding_regex: str | None = field(
        default=None,
        metadata={"help": "Old TRL name of --vllm_structured_outputs_regex; used as that."},
    )
    gradient_checkpointing_use_reentrant: bool | None = field(
        default=None,
        metadata={"help": "VLM-R1 / open-r1 spelling of --gradient_checkpointing_kwargs '{\"use_reentrant\": ...}'; used as that."},
    )
    dataset_config: str | None = field(
        default=None,
        metadata={"help": "Ignored with a warning: a hub-dataset option of TRL's ScriptArguments; Geo-R reads files."},
    )
    dataset_train_split: str | None = field(
        default=None,
        metadata={"help": "Ignored with a warning: a hub-dataset option; all records train, see --val_split_ratio."},
    )
    dataset_test_split: str | None = field(
        default=None,
        metadata={"help": "Ignored with a warning: a hub-dataset option; the validation set comes from --val_split_ratio."},
    )
    ignore_bias_buffers: bool | None = field(
        default=None,
        metadata={"help": "Ignored with a warning: a DDP workaround for causal-LM bias buffers that Qwen-VL does not have."},
    )
