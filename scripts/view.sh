#!/usr/bin/env bash
# Open napari on the sample phantom (or the given volumes) with the plugin docked.
# Usage: scripts/view.sh [VOLUME_OR_DICOM_FOLDER ...]
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
ensure_system_packages $QT_LIBS
ensure_venv
exec "$VENV/bin/medseg" view "$@"
