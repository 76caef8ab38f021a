#!/usr/bin/env bash
# Regenerate local_scripts/constraints-cpu.txt, the lock setup.sh installs the CPU stack with.
#
#   bash local_scripts/update_constraints.sh                 fresh venv + setup.sh (current pins kept), freeze
#   bash local_scripts/update_constraints.sh --upgrade       fresh venv + setup.sh --no-lock (newest allowed), freeze
#   bash local_scripts/update_constraints.sh --from-current  freeze the active (or the repo's .venv) environment
#
# A fresh venv (PYTHON, default python3) takes minutes and ~1 GB of downloads. Without --upgrade the existing
# pins are kept and only packages new to pyproject.toml (or to its dev extra) are resolved and added. The
# file lists every package of geo-r[dev,app]'s requirement closure (what setup.sh installs) at its installed version, nothing installed
# beside it (local_scripts/freeze_constraints.py; EXTRAS=dev,other to lock more extras). Commit it with the
# bench results measured on it.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$REPO/local_scripts/constraints-cpu.txt"
fresh_venv() {  # $1: extra setup.sh flags
  TMP="$(mktemp -d)"
  trap 'rm -rf "$TMP"' EXIT
  "${PYTHON:-python3}" -m venv "$TMP/venv"
  # shellcheck disable=SC2086
  VIRTUAL_ENV="$TMP/venv" CONDA_PREFIX="" bash "$REPO/setup.sh" $1
  PY="$TMP/venv/bin/python"
}
case "${1:-}" in
  -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --from-current)
    PY="${VIRTUAL_ENV:-$REPO/.venv}/bin/python"
    [[ -x "$PY" ]] || { echo "update_constraints.sh: no active venv and no $REPO/.venv" >&2; exit 1; }
    ;;
  --upgrade) fresh_venv --no-lock ;;
  "") fresh_venv "" ;;
  *) echo "update_constraints.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
esac
"$PY" "$REPO/local_scripts/freeze_constraints.py" --extras "${EXTRAS:-dev,app}" --out "$OUT"
echo "==> review and commit: git diff $OUT"
