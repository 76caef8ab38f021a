"""Colocated vLLM rollouts (TRL's ``--use_vllm --vllm_mode colocate``) on vLLM's CPU build too, and a clean end.

Weight sync.
TRL 1.16 pushes the policy's weights into its colocated engine by calling the model's ``load_weights`` on the
live parameters (``trl/generation/vllm_generation.py:511``). vLLM's CPU build cannot take that: after loading,
every linear layer hands its weight to a packed oneDNN / SGL kernel and replaces ``layer.weight`` with an empty
tensor (``UnquantizedLinearMethod.process_weights_after_loading``, ``vllm/model_executor/layers/linear.py:216``
-> ``dispatch_cpu_unquantized_gemm(layer, remove_weight=True)`` in ``vllm/model_executor/layers/utils.py``), so
the second load fails with ``'Parameter' object has no attribute 'weight_loader'`` or a shape mismatch.

vLLM's own in-place reload (``Worker.reload_weights``) restores each layer's loading layout, loads and packs it
again. On the CPU platform :func:`install_cpu_weight_sync` makes TRL's engine use it, fed by TRL's own parameter
iterator (PEFT merge, ZeRO-3 gather, name fixes unchanged), then drops the vision-encoder and prefix caches
computed with the old weights. On a GPU nothing changes.

One gap of that reload is closed here: with tied word embeddings (``tie_word_embeddings``, e.g. Qwen2.5-VL-3B and
the tiny test models) the output head shares the embedding's weight, which the reload updates, but the head keeps
the packed copy it made at load time (vLLM logs "ParallelLMHead: Failed to load weights" and restores the old
kernel), so logits would still come from the old weights. Every vocabulary embedding / LM head is therefore packed
again from its current weight after the reload.

Shutdown. The colocated engine joins (or, in one process, creates) torch's process group and tears it down in a
finaliser at exit; closing the group first, as the entrypoint does, made that finaliser fail ("Invalid process
group specified"). :func:`close_colocated_engine` waits for every rank, then shuts the engine down first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch

logger = logging.getLogger(__name__)


def vllm_runs_on_cpu() -> bool:
    """True when vLLM's current platform is its CPU build (False when vLLM is not importable)."""
    try:
        from vllm.platforms import current_platform
    except ImportError:
        return False
    return bool(current_platform.is_cpu())


def _cloned(params: Iterator[tuple[str, torch.Tensor]]) -> Iterator[tuple[str, torch.Tensor]]:
    """Each tensor copied while it is materialised: vLLM's layerwise reload may hold a layer's tensors until the
    layer is complete, after a ZeRO-3 gather has released them."""
    for name, tensor in params:
        yield name, tensor.detach().clone()


def repack_vocab_layers(model: torch.nn.Module) -> int:
    """On vLLM's CPU build, pack every vocabulary embedding / LM head again from its current weight (a tied head's
    packed copy is not refreshed by the reload); returns how many were packed."""
    from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding

    n = 0
    for module in model.modules():
        if isinstance(module, VocabParallelEmbedding) and hasattr(module, "cpu_linear"):
            module.quant_method.process_weights_after_loading(module)
            n += 1
    return n


def reload_into_engine(vllm_generation: Any) -> None:
    """Push the policy's current weights into the colocated engine with vLLM's in-place reload."""
    llm = vllm_generation.llm
    worker = llm.llm_engine.model_executor.driver_worker
    worker.reload_weights(weights_iterator=_cloned(vllm_generation._iter_named_params()), is_checkpoint_format=True)
    repack_vocab_layers(worker.model_runner.get_model())
    llm.llm_engine.reset_encoder_cache()  # vision embeddings of the old weights must not be reused
    llm.reset_prefix_cache()


def install_cpu_weight_sync(vllm_generation: Any) -> bool:
    """On vLLM's CPU platform in colocate mode, make ``vllm_generation.sync_weights`` reload in place; returns
    whether it did (False on a GPU or in server mode: TRL's own sync stays)."""
    if getattr(vllm_generation, "mode", None) != "colocate" or not vllm_runs_on_cpu():
        return False

    def sync_weights() -> None:
        reload_into_engine(vllm_generation)

    vllm_generation.sync_weights = sync_weights
    logger.info("vLLM runs on CPU: the policy's weights reach the colocated engine by vLLM's in-place reload")
    return True


def close_colocated_engine(trainer: Any) -> bool:
    """Wait for every rank, then shut a colocated vLLM engine down (it closes the process groups it used);
    returns whether there was one. Call it before closing the process group yourself."""
    generation = getattr(trainer, "vllm_generation", None)
    llm = getattr(generation, "llm", None)
    if not getattr(trainer, "use_vllm", False) or llm is None:
        return False
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # no rank tears the groups down while another still saves
    llm.llm_engine.engine_core.shutdown()
    return True
