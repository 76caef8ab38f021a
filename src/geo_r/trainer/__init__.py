"""GRPO for geolocation: ``GeoGRPOTrainer`` (a subclass of TRL's ``GRPOTrainer``) and its extensions.

:mod:`.grpo_trainer` (the trainer), :mod:`.group_filter` (DAPO's dynamic sampling), :mod:`.vision_cache` and
:mod:`.image_memo` (each photo encoded, decoded and processed once), :mod:`.geo_metrics` (km metrics in the log),
:mod:`.log_table` (``python -m geo_r.trainer.log_table trainer_state.json``). Model loading lives in
:mod:`geo_r.models`, the distributed runtime in :mod:`geo_r.runtime`, the command line in :mod:`geo_r.grpo`.
Submodules are imported explicitly so that importing this package stays free of torch and TRL.
"""
