#!/usr/bin/env bash
# The README's test command: set up everything from the repo (fresh venv), start the services, run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."

export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 YOLO_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export HARDCASE_SAMPLE_DATA="${HARDCASE_SAMPLE_DATA:-$(cd .. && pwd)/shared/data}"

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[train,dev]'
.venv/bin/pip check

bash scripts/services.sh
bash scripts/install_chromium.sh
bash scripts/ls_interop.sh --install-only  # a real Label Studio for tests/interop (cached outside the checkout)

.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -n 2 --dist loadgroup --timeout 600 -p no:cacheprovider "$@"
