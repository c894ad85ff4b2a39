#!/usr/bin/env bash
# Interoperability check: a real Label Studio 1.23.2 (its own virtual environment) against a real Hardcase,
# both bound to 127.0.0.1. The test suite runs it (tests/interop/test_label_studio_real.py); scripts/test.sh
# calls `--install-only` first, which installs Label Studio into a cache folder outside the checkout once
# (about 2-10 minutes, pip's cache helps) and does nothing when it is there.
#   bash scripts/ls_interop.sh                 run the check (LSVENV overrides the folder)
#   bash scripts/ls_interop.sh --install-only  only make sure Label Studio is installed
set -euo pipefail
cd "$(dirname "$0")/.."
LSVENV="${LSVENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hardcase/label-studio-1.23.2}"
if [ ! -x "$LSVENV/bin/label-studio" ]; then
  echo "installing label-studio==1.23.2 into $LSVENV (several minutes)"
  python3 -m venv "$LSVENV"
  # a corrupted wheel in pip's cache fails the hash check: fetch again without the cache
  "$LSVENV/bin/pip" install -q label-studio==1.23.2 || "$LSVENV/bin/pip" install -q --no-cache-dir label-studio==1.23.2
fi
if [ "${1:-}" = "--install-only" ]; then
  exit 0
fi
exec .venv/bin/python scripts/ls_interop.py --label-studio "$LSVENV/bin/label-studio" "$@"
