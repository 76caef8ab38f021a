"""GRPO training of a Qwen-VL model to geolocate photos: flags -> data -> model -> GeoGRPOTrainer.train().

Launch it like VLM-R1's entrypoint, on one process or many:

    torchrun --nproc_per_node 8 src/geo_r/grpo_jsonl.py --model_name_or_path Qwen/Qwen2.5-VL-3B-Instruct \\
        --data_file_paths a.jsonl:b.jsonl --image_folders imgs_a/:imgs_b/ --output_dir out \\
        --reward_funcs format distance region --deepspeed local_scripts/zero3.json --bf16

Flags are TRL's GRPOConfig and ModelConfig plus Geo-R's own (see --help). The data is validated before
any model is loaded. VLM-R1 flags without a meaning here are accepted and explained in the log.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as a file (torchrun src/geo_r/grpo_jsonl.py): keep this folder off sys.path so that the package's
    # subfolders (data/, eval/, ...) cannot shadow top-level modules; the package itself is imported installed.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]

from geo_r.grpo.main import cli_main, main, parse_args  # noqa: E402  (after the sys.path guard above)

__all__ = ["cli_main", "main", "parse_args"]

if __name__ == "__main__":
    sys.exit(cli_main())
