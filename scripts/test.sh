#!/usr/bin/env bash
# Run the whole test suite (GUI tests under Xvfb). Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
ensure_system_packages xvfb xauth $QT_LIBS
ensure_venv
cd "$ROOT"
"$VENV/bin/ruff" check .
exec xvfb-run -a -s "-screen 0 1600x1000x24" "$VENV/bin/python" -m pytest -q -p no:warnings "$@"
