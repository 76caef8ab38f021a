"""Qwen-VL model families: loading a checkpoint folder, its processor (with or without torchvision) and LoRA.

Used by every entry point that runs a model: GRPO (:mod:`geo_r.trainer`, :mod:`geo_r.grpo`), SFT, eval, the
demo and the app. The class is chosen from ``config.model_type``, never from the path. Submodules are imported
explicitly (``from geo_r.models.processor import load_processor``) so that importing this package stays free
of torch and transformers.
"""
