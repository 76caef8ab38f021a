"""Training side of Geo-R: model and processor loading (``model_loading``, ``processor``) and the GRPO trainer.

Submodules are imported explicitly (``from geo_r.trainer.processor import load_processor``) so that
importing this package stays free of torch / transformers.
"""
