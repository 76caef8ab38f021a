"""A GRPO trainer that keeps what each step produced, for tests that compare two training runs step by step."""

from __future__ import annotations

from typing import Any


def recording_trainer(base: type) -> type:
    """A subclass of ``base`` (TRL's GRPOTrainer or GeoGRPOTrainer) whose ``record`` keeps each step's
    completions, reference and old log-probs (when the rollout has them) and loss."""

    class Recording(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.record: dict[str, list] = {"completion_ids": [], "ref": [], "old": [], "loss": []}

        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            self.record["completion_ids"].append(out["completion_ids"].clone())
            for key, name in (("ref", "ref_per_token_logps"), ("old", "old_per_token_logps")):
                if out.get(name) is not None:
                    self.record[key].append(out[name].clone())
            return out

        def _compute_loss(self, model, inputs):
            loss = super()._compute_loss(model, inputs)
            self.record["loss"].append(loss.detach().clone())
            return loss

    return Recording
