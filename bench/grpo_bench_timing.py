"""Per-phase timers for a GRPO step, wrapped around a trainer's override points (bench only).

``timed_trainer_class(base)`` returns a subclass of ``base`` (``GeoGRPOTrainer`` or stock
``trl.GRPOTrainer``) whose overrides only time ``super()`` calls, so both trainers are measured the
same way. Phase boundaries synchronise the device (``torch.cuda.synchronize``) so each phase's time is
the GPU time it caused; a step has a dozen boundaries, each phase takes hundreds of milliseconds or more.

Phases of one optimizer step (seconds; a step may hold several micro-steps):

* ``generate``: TRL's ``_generate`` (prompt templating + processor + decoding + text decode);
  ``hf_generate`` is the decoding call alone, split by forward hooks into ``prefill`` (first forward)
  and ``decode`` (the rest, ``decode_forwards`` calls);
* ``old_logps`` / ``ref_logps``: ``_get_per_token_logps_and_entropies`` outside the loss (no grad);
* ``rewards``: ``_calculate_rewards``; ``rollout``: all of ``_generate_and_score_completions``;
* ``policy_forward``: ``compute_loss`` (its log-prob forward and the loss); ``backward``: the rest of
  ``training_step`` after inputs and loss; ``optimizer``: ``optimizer.step()``;
* ``step``: the end of the previous step (``on_train_begin`` for the first) to ``on_step_end``, so the
  batch fetching and collation the Trainer does before ``on_step_begin`` count; ``other`` = step minus
  the parts above;
* ``vision_images`` / ``vision_patches``: photos the model asked the vision tower for, and patches the
  tower really encoded (:func:`count_vision`).

Under DeepSpeed the optimizer step runs inside ``backward`` (the engine steps there), so ``optimizer``
is ~0 and ``backward`` holds both; the bench uses DeepSpeed only in its memory probes.

Memory: peak allocated / reserved bytes over the step, over generation and over the update (policy
forward + backward + optimizer), read with ``torch.cuda.max_memory_*`` and a running maximum across
the resets.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Any

import torch
from transformers import TrainerCallback


class PhaseClock:
    """Device-synchronised stopwatch plus running peak-memory maxima (CUDA) for one trainer."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.current: dict[str, float] = defaultdict(float)
        self.steps: list[dict[str, Any]] = []
        self._peak_alloc = 0
        self._peak_reserved = 0

    def sync(self) -> None:
        """Wait for queued device work, so wall time covers it."""
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def now(self) -> float:
        """Synchronised ``perf_counter``."""
        self.sync()
        return time.perf_counter()

    @contextmanager
    def phase(self, name: str):
        """Add the synchronised wall time of the block to the current step's ``name``."""
        start = self.now()
        try:
            yield
        finally:
            self.current[name] += self.now() - start

    # peak memory ------------------------------------------------------------------------------------
    def _fold_peak(self) -> tuple[int, int]:
        if not self.cuda:
            return 0, 0
        alloc = torch.cuda.max_memory_allocated(self.device)
        reserved = torch.cuda.max_memory_reserved(self.device)
        self._peak_alloc = max(self._peak_alloc, alloc)
        self._peak_reserved = max(self._peak_reserved, reserved)
        return alloc, reserved

    def open_peak(self) -> None:
        """Start a peak-memory window (the step's running maximum keeps what came before)."""
        if self.cuda:
            self._fold_peak()
            torch.cuda.reset_peak_memory_stats(self.device)

    def close_peak(self, name: str) -> None:
        """End the window opened by :meth:`open_peak`: ``peak_<name>_bytes`` = its peak (max over windows)."""
        if not self.cuda:
            return
        alloc, _ = self._fold_peak()
        key = f"peak_{name}_bytes"
        self.current[key] = max(self.current.get(key, 0), alloc)

    @contextmanager
    def peak(self, name: str):
        """Record the peak allocated bytes inside the block as ``peak_<name>_bytes`` (max over calls)."""
        self.open_peak()
        try:
            yield
        finally:
            self.close_peak(name)

    def begin_step(self) -> None:
        """Start a step: clear the phase sums and the peak-memory maxima."""
        self.current = defaultdict(float)
        self.current["_start"] = self.now()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        self._peak_alloc = self._peak_reserved = 0

    def end_step(self) -> None:
        """Close the step and append its phase record to ``steps``."""
        record = dict(self.current)
        record["step"] = self.now() - record.pop("_start", self.now())
        if self.cuda:
            self._fold_peak()
            record["peak_step_allocated_bytes"] = self._peak_alloc
            record["peak_step_reserved_bytes"] = self._peak_reserved
        self.steps.append(record)
        self.current = defaultdict(float)


class _StepCallback(TrainerCallback):
    """Marks optimizer-step boundaries and times ``optimizer.step()``."""

    def __init__(self, clock: PhaseClock) -> None:
        self.clock = clock
        self._opt_start: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.clock.begin_step()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.clock.open_peak()
        self._opt_start = self.clock.now()

    def on_optimizer_step(self, args, state, control, **kwargs):
        if self._opt_start is not None:
            self.clock.current["optimizer"] += self.clock.now() - self._opt_start
            self._opt_start = None
            self.clock.close_peak("optimizer")

    def on_step_end(self, args, state, control, **kwargs):
        # the next step starts now, not at on_step_begin: the Trainer fetches and collates a step's batches
        # before on_step_begin, and that time belongs to the step
        self.clock.end_step()
        self.clock.begin_step()


def _forward_hooks(model: torch.nn.Module, clock: PhaseClock, marks: list[float]):
    """Hooks that append the synchronised end time of every forward of ``model`` to ``marks``."""

    def after(module, args, output):
        marks.append(clock.now())

    return [model.register_forward_hook(after)]


def _innermost(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model under a PEFT wrapper (whose ``generate`` calls the inner model's forward)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def timed_trainer_class(base: type) -> type:
    """A subclass of ``base`` (a ``trl.GRPOTrainer`` subclass) that times its phases into ``self.bench_clock``.

    Set ``trainer.bench_split_decode = False`` to skip the per-forward hooks (e.g. with a compiled
    decoding loop, where hooks would break the graph); ``prefill`` / ``decode`` are then not reported.
    """

    class Timed(base):  # type: ignore[misc, valid-type]
        bench_split_decode = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.bench_clock = PhaseClock(self.accelerator.device)
            self.add_callback(_StepCallback(self.bench_clock))
            self._bench_in_loss = False
            self._bench_nograd_calls = 0

        # ---- whole micro-step: inputs (rollout when due), loss, backward --------------------------------
        def training_step(self, model, inputs, num_items_in_batch=None):
            clock = self.bench_clock
            before = dict(clock.current)
            start = clock.now()
            out = super().training_step(model, inputs, num_items_in_batch)
            total = clock.now() - start
            clock.close_peak("update")  # opened when compute_loss started: policy forward + backward
            spent = sum(clock.current.get(k, 0.0) - before.get(k, 0.0) for k in ("prepare_inputs", "policy_forward"))
            clock.current["backward"] += total - spent
            return out

        def _prepare_inputs(self, generation_batch):
            with self.bench_clock.phase("prepare_inputs"):
                return super()._prepare_inputs(generation_batch)

        def _generate_and_score_completions(self, inputs):
            self._bench_nograd_calls = 0
            with self.bench_clock.phase("rollout"):
                return super()._generate_and_score_completions(inputs)

        def _generate(self, prompts):
            with self.bench_clock.phase("generate"):
                return super()._generate(prompts)

        def _generate_single_turn(self, prompt_ids, *args, **kwargs):
            clock = self.bench_clock
            marks: list[float] = []
            hooks = []
            if self.bench_split_decode:
                hooks = _forward_hooks(_innermost(self.accelerator.unwrap_model(self.model)), clock, marks)
            try:
                with clock.peak("generate"):
                    start = clock.now()
                    out = super()._generate_single_turn(prompt_ids, *args, **kwargs)
                    end = clock.now()
            finally:
                for h in hooks:
                    h.remove()
            clock.current["hf_generate"] += end - start
            clock.current["generate_calls"] += 1
            clock.current["generate_batch"] += len(prompt_ids)
            clock.current["prompt_tokens_generate"] += sum(len(p) for p in prompt_ids)
            if marks:
                clock.current["prefill"] += marks[0] - start
                clock.current["decode"] += marks[-1] - marks[0]
                clock.current["decode_forwards"] += len(marks) - 1
            lengths = [len(c) for c in out[0]]
            clock.current["generated_tokens"] += sum(lengths)
            clock.current["completions"] += len(lengths)
            clock.current.setdefault("generate_shapes", []).append(
                {"batch": len(prompt_ids), "prompt_len": max(map(len, prompt_ids)), "steps": max(lengths, default=0)}
            )
            return out

        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, *args, **kwargs):
            if self._bench_in_loss:
                return super()._get_per_token_logps_and_entropies(
                    model, input_ids, attention_mask, logits_to_keep, *args, **kwargs
                )
            # Outside the loss TRL makes at most two no-grad passes per rollout: old log-probs (only when
            # generation and optimisation steps are misaligned), then the reference model's.
            generate_every = self.args.steps_per_generation * self.num_iterations
            old_due = self.args.gradient_accumulation_steps % generate_every != 0 or (
                self.use_vllm and getattr(self, "vllm_importance_sampling_correction", False)
            )
            name = "old_logps" if old_due and self._bench_nograd_calls == 0 else "ref_logps"
            self._bench_nograd_calls += 1
            with self.bench_clock.phase(name):
                out = super()._get_per_token_logps_and_entropies(
                    model, input_ids, attention_mask, logits_to_keep, *args, **kwargs
                )
            grid = kwargs.get("image_grid_thw")
            self.bench_clock.current.setdefault("logps_shapes", []).append(
                {
                    "sequence_lengths": [int(n) for n in attention_mask.sum(1).tolist()],
                    "scored_tokens": int(attention_mask[:, -logits_to_keep:].sum()),
                    "image_patches": [int(p) for p in grid.prod(-1).tolist()] if grid is not None else [],
                }
            )
            return out

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            with self.bench_clock.phase("rewards"):
                return super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            self._record_update_shapes(inputs)
            self._bench_in_loss = True
            try:
                self.bench_clock.open_peak()
                with self.bench_clock.phase("policy_forward"):
                    return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            finally:
                self._bench_in_loss = False

        def _record_update_shapes(self, inputs: dict[str, Any]) -> None:
            prompt_mask, completion_mask = inputs["prompt_mask"], inputs["completion_mask"]
            lengths = (prompt_mask.sum(1) + completion_mask.sum(1)).tolist()
            grid = inputs.get("image_grid_thw")
            patches = grid.prod(-1).tolist() if grid is not None else []
            self.bench_clock.current.setdefault("update_shapes", []).append(
                {
                    "sequence_lengths": [int(n) for n in lengths],
                    "scored_tokens": int(completion_mask.sum()),
                    "image_patches": [int(p) for p in patches],
                }
            )

    Timed.__name__ = Timed.__qualname__ = f"Timed{base.__name__}"
    return Timed


def count_vision(model: torch.nn.Module, clock: PhaseClock) -> int:
    """Hooks adding, per step, the photos asked of each vision tower and the patches it encoded; returns #towers.

    The tower's own forward hook sees every request (one per call, whatever vision reuse does inside); the
    patch embedding sees only what is really encoded.
    """
    from geo_r.trainer.vision_cache import find_vision_towers

    def asked(module, args, kwargs):
        grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        clock.current["vision_images"] += int(grid.shape[0]) if grid is not None else 0

    def encoded(module, args):
        clock.current["vision_patches"] += int(args[0].shape[0])

    towers = find_vision_towers(model)
    for tower in towers:
        tower.register_forward_pre_hook(asked, with_kwargs=True)
        tower.patch_embed.register_forward_pre_hook(encoded)
    return len(towers)
