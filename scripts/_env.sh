# Shared by scripts/view.sh and scripts/test.sh: make .venv on first use, refresh it when
# pyproject.toml changes. Sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"

need_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

# Qt's xcb platform needs these on a bare Debian/Ubuntu machine (a desktop has them already).
QT_LIBS="libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 \
libxcb-xkb1 libxkbcommon-x11-0 libxcb-shape0 libxcb-cursor0 libxcb-xfixes0 libgl1 libegl1 libdbus-1-3 \
libfontconfig1 libglib2.0-0"

ensure_system_packages() {
  local want="$*" missing=""
  command -v dpkg-query >/dev/null || return 0
  for p in $want; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"; done
  [ -z "$missing" ] && return 0
  echo "installing system packages:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  need_root apt-get install -y -q $missing >/dev/null 2>&1 \
    || { need_root apt-get update -q >/dev/null 2>&1 && need_root apt-get install -y -q $missing >/dev/null; } \
    || echo "warning: could not install$missing (install them with your package manager)" >&2
}

ensure_venv() {
  local stamp="$VENV/.medseg-installed"
  local want
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  echo "setting up $VENV (first run only)..." >&2
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first, pinned: a bare 'torch' requirement would pull a multi-GB CUDA build here.
  "$VENV/bin/python" -m pip install -q "torch==2.13.0" || "$VENV/bin/python" -m pip install -q "torch>=2.2,<3"
  "$VENV/bin/python" -m pip install -q -e "$ROOT[test]"
  echo "$want" > "$stamp"
}
