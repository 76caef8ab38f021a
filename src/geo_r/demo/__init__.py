"""The offline CPU demo: a tiny Qwen-VL built from scratch (``tiny_model``), toy data and the demo pipeline."""
