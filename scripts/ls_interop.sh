#!/usr/bin/env bash
# Opt-in interoperability check: a real Label Studio 1.23.2 (its own virtual environment) against a real
# Hardcase, both bound to 127.0.0.1. Not part of .ci/run: installing Label Studio takes about ten minutes.
#   bash scripts/ls_interop.sh            (LSVENV=/tmp/lsvenv by default; created on first use)
set -euo pipefail
cd "$(dirname "$0")/.."
LSVENV="${LSVENV:-/tmp/lsvenv}"
if [ ! -x "$LSVENV/bin/label-studio" ]; then
  echo "installing label-studio==1.23.2 into $LSVENV (several minutes)"
  python3 -m venv "$LSVENV"
  "$LSVENV/bin/pip" install -q label-studio==1.23.2
fi
exec .venv/bin/python scripts/ls_interop.py --label-studio "$LSVENV/bin/label-studio" "$@"
