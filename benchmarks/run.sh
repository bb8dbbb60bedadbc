#!/usr/bin/env bash
# Side-by-side benchmark: moe-mlora vs DeepCTR-Torch. DeepCTR-Torch lives only in this separate
# virtualenv (.venv-bench), never in the project's dependencies. Usage: bash benchmarks/run.sh [--repeats 3]
# Writes docs/benchmarks/{README.md,results.json,profiles.md}.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-bench
if [ ! -x "$VENV/bin/python" ] || [ constraints.txt -nt "$VENV/.installed" ]; then
  python3 -m venv "$VENV"
  # deepctr-torch imports requests (for a version check) without declaring it.
  "$VENV/bin/pip" install --quiet -c constraints.txt -e . "deepctr-torch==0.3.0" requests
  touch "$VENV/.installed"
fi
if [ -z "${MOE_MLORA_DATA_DIR:-}" ] && [ -d ../shared/data ]; then export MOE_MLORA_DATA_DIR="$(cd ../shared/data && pwd)"; fi
"$VENV/bin/python" benchmarks/compare.py "$@"
# Where the time goes, per model: docs/benchmarks/profiles.md.
"$VENV/bin/python" benchmarks/profile_ops.py
