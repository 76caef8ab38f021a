"""Run inside the LLaMA-Factory venv (setup.sh --sft): load an exported dataset with LLaMA-Factory's own loader.

    .venv-sft/bin/python tests/llamafactory_probe.py MODEL_DIR DATASET_DIR DATASET_NAME MEDIA_DIR MAX_PIXELS OUT_JSON

Writes one JSON object to OUT_JSON (LLaMA-Factory prints its own example to stdout): the number of examples LLaMA-Factory kept, and for each the ``input_ids`` and
``labels`` it built (prompt masked to -100), so tests/test_sft_llamafactory.py can check the export and
compare the tokens with the built-in SFT's. It imports nothing from geo_r (that venv does not have it).
"""

from __future__ import annotations

import json
import sys
import tempfile


def main(argv: list[str]) -> int:
    """Tokenize the dataset as ``llamafactory-cli train`` would (stage sft, template qwen2_vl) and write it."""
    model_dir, dataset_dir, dataset_name, media_dir, max_pixels, out_json = argv
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    with tempfile.TemporaryDirectory() as out:
        model_args, data_args, training_args, _, _ = get_train_args(
            {
                "model_name_or_path": model_dir,
                "image_max_pixels": int(max_pixels),
                "stage": "sft",
                "do_train": True,
                "finetuning_type": "full",
                "dataset": dataset_name,
                "dataset_dir": dataset_dir,
                "media_dir": media_dir,
                "template": "qwen2_vl",
                "cutoff_len": 2048,
                "overwrite_cache": True,
                "preprocessing_num_workers": 1,
                "output_dir": out,
                "report_to": "none",
                "bf16": False,
            }
        )
        tokenizer_module = load_tokenizer(model_args)
        template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
        module = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
        train = module["train_dataset"]
        rows = [{"input_ids": list(r["input_ids"]), "labels": list(r["labels"])} for r in train]
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump({"examples": len(rows), "rows": rows}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
