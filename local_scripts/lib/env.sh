# Sourced by run_scripts/*.sh: use the environment setup.sh installed into (and the shared defaults, defaults.sh).
# An active virtualenv or conda env wins; otherwise the repository's .venv is activated.
# Fails with a clear message when neither exists (run 'bash setup.sh' first).
GEO_R_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export GEO_R_HOME
# shellcheck source=defaults.sh
source "$GEO_R_HOME/local_scripts/lib/defaults.sh"
if [[ -z "${VIRTUAL_ENV:-}" && -z "${CONDA_PREFIX:-}" ]]; then
  if [[ -f "$GEO_R_HOME/.venv/bin/activate" ]]; then
    # shellcheck disable=SC1091
    source "$GEO_R_HOME/.venv/bin/activate"
  else
    echo "Geo-R: no active environment and no $GEO_R_HOME/.venv; run 'bash setup.sh' first" >&2
    return 1 2>/dev/null || exit 1
  fi
fi
if ! python -c 'import geo_r' 2>/dev/null; then
  echo "Geo-R: package geo_r is not installed in $(command -v python); run 'bash setup.sh' first" >&2
  return 1 2>/dev/null || exit 1
fi
