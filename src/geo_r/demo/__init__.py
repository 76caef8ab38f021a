"""The offline CPU demo: a tiny Qwen-VL built from scratch (``tiny_model``), toy data and the demo pipeline; the
retrieval world and the retrieval demo (``retrieval_world``, ``retrieval_pipeline``) beside them."""
