"""Defaults shared by every entry point (GRPO, SFT, eval, the app) and, through a test, by the shell launchers.

``local_scripts/lib/defaults.sh`` repeats these numbers for the shell scripts and the LLaMA-Factory yamls
repeat the pixel bound; ``tests/test_layout.py`` checks that they agree with this module.
"""

from __future__ import annotations

DEFAULT_MAX_PIXELS = 401_408
"""~0.4 megapixels: at most 512 image tokens per photo on Qwen2.5-VL (patch 14, 2x2 merge). VLM-R1's default of
12,845,056 allows 16,384 tokens per image and is the main cause of its out-of-memory reports."""
DEFAULT_MIN_PIXELS = 3_136
"""The smallest image area after resizing (4 image tokens), the Qwen-VL processors' own default."""
DEFAULT_DIST_TIMEOUT_S = 1800
"""transformers' ``--ddp_timeout`` default: a ZeRO-3 checkpoint save of a 7B model or a slow step fits in it."""
DEFAULT_MASTER_PORT = 29500
"""torchrun's rendezvous port on node 0."""
