#!/usr/bin/env bash
# The README's "run the product" command: install into .venv, seed the demo project, start API + worker +
# embedded Redis (SQLite and local files under .hardcase/). Open http://127.0.0.1:8000 and log in as admin/admin.
# HARDCASE_HOST / HARDCASE_PORT choose where it listens; HARDCASE_EXTRAS which extras are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 YOLO_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
HOST="${HARDCASE_HOST:-127.0.0.1}"
PORT="${HARDCASE_PORT:-8000}"
EXTRAS="${HARDCASE_EXTRAS:-train}"

phase() { printf '\n==> %s\n' "$*"; }

if [ -x .venv/bin/python ]; then
  phase "using the existing virtual environment .venv"
else
  phase "creating the virtual environment .venv"
  python3 -m venv .venv
fi
# pip stays quiet (its log goes to .hardcase/pip.log); the torch training stack takes a few minutes the first time.
mkdir -p .hardcase
phase "installing Hardcase with the [$EXTRAS] extras (first run: several minutes; log in .hardcase/pip.log)"
if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e ".[$EXTRAS]"; } >.hardcase/pip.log 2>&1; then
  tail -n 30 .hardcase/pip.log >&2
  echo "install failed; the whole log is in .hardcase/pip.log" >&2
  exit 1
fi

phase "migrating the database and seeding the demo project (idempotent)"
.venv/bin/hardcase demo

phase "starting API, worker and embedded Redis on http://$HOST:$PORT (Ctrl-C stops all three)"
exec .venv/bin/hardcase up --host "$HOST" --port "$PORT"
