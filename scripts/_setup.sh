# Sourced by scripts/test and scripts/check: find Python 3.11+, and create or update the
# virtualenv at .venv (override with LEGATO_VENV) with `pip install -e '.[dev]'`.
#
# The install is skipped while pyproject.toml is unchanged since the last one (a stamp in
# the venv remembers its hash); LEGATO_FORCE_INSTALL=1 installs anyway.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${LEGATO_VENV:-$REPO_ROOT/.venv}

_python_is_supported() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

_find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 && _python_is_supported "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# Sets VENV_PYTHON; returns non-zero with a message on failure.
ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        local python
        if ! python=$(_find_python); then
            echo "error: Legato needs Python 3.11 or newer; found none (tried \$PYTHON, python3," \
                "python3.13, python3.12, python3.11). python3 is:" \
                "$(python3 --version 2>&1 || echo 'missing')" >&2
            return 1
        fi
        echo "==> creating virtualenv $VENV with $python ($("$python" --version 2>&1))"
        "$python" -m venv "$VENV" || return 1
    fi
    VENV_PYTHON=$VENV/bin/python
    if ! _python_is_supported "$VENV_PYTHON"; then
        echo "error: $VENV uses $("$VENV_PYTHON" --version 2>&1); Legato needs Python 3.11+." \
            "Remove $VENV and run again (PYTHON=python3.11 picks the interpreter)." >&2
        return 1
    fi
    local stamp=$VENV/.legato-dev-install wanted
    wanted=$(sha256sum "$REPO_ROOT/pyproject.toml" | cut -d' ' -f1)
    if [ "${LEGATO_FORCE_INSTALL:-}" = 1 ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
        echo "==> installing legato and its dev tools: pip install -e '.[dev]'"
        "$VENV_PYTHON" -m pip install --disable-pip-version-check --progress-bar off -q \
            -e "$REPO_ROOT[dev]" || { echo "error: pip install -e '.[dev]' failed" >&2; return 1; }
        echo "$wanted" >"$stamp"
    fi
}

# Step bookkeeping: run_step NAME CMD... runs CMD, remembers its result, never exits.
STEP_RESULTS=()
FAILED_STEPS=0

run_step() {
    local name=$1 started code
    shift
    echo
    echo "==> $name: $*"
    started=$(date +%s)
    "$@"
    code=$?
    local took=$(($(date +%s) - started))
    if [ "$code" -eq 0 ]; then
        STEP_RESULTS+=("ok      $name (${took}s)")
    else
        STEP_RESULTS+=("FAILED  $name: exit $code (${took}s)")
        FAILED_STEPS=$((FAILED_STEPS + 1))
    fi
    return "$code"
}

print_summary() {
    echo
    echo "==> summary ($1)"
    local line
    for line in "${STEP_RESULTS[@]}"; do
        echo "    $line"
    done
}
