#!/usr/bin/env bash
# The README's "run the product" command: install into .venv, seed the demo project, start API + worker +
# embedded Redis (SQLite and local files under .hardcase/). Open http://127.0.0.1:8000 and log in as admin/admin.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 YOLO_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".[${HARDCASE_EXTRAS:-train}]"
exec .venv/bin/hardcase up --demo --host "${HARDCASE_HOST:-127.0.0.1}" --port "${HARDCASE_PORT:-8000}"
