"""The GRPO command line: Geo-R's and TRL's flags, VLM-R1's legacy flags, and the run itself.

``src/geo_r/grpo_jsonl.py`` (what users launch with ``torchrun``) and ``geo-r grpo`` both call
:func:`geo_r.grpo.main.main`. Submodules are imported explicitly.
"""
