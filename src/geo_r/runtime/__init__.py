"""The distributed runtime shared by GRPO, SFT and eval: the process group, heartbeat, pre-emption,
checkpoints that can really be resumed, and the batch plan the launchers print.

Nothing here knows about geolocation or about TRL's trainer; submodules are imported explicitly.
"""
