#!/usr/bin/env bash
# The fast check on MovieLens-100K, every grid of the published ML-100K results, resumably and in order:
#   MOE_MLORA_DATA_DIR=../shared/data WORKERS=2 bash benchmarks/ml100k.sh [results-folder]
# 1. The ablation: Base, MoE-MLoRA and its four variants on DeepFM, DCN, AutoInt x gender/age/occupation, the
#    same 3 seeds for every variant (162 runs).
# 2. Table 1: 8 backbones x 3 splits x Base, MLoRA, MoE-MLoRA and the authors'-code schedule as the fourth arm,
#    5 seeds (480 runs; the ablation's Base, MoE-MLoRA and authors-code runs of seeds 1-3 are reused). The fourth
#    arm is named here in advance (the authors' own code), not picked from the ablation's results.
# 3. Figure 2 by gender: k = 1..4 experts per domain, seeds 1-3 for every k (120 runs; its Base and k = 1 runs are
#    Table 1's, so 72 are new). 633 distinct runs in all, about 250 CPU-min (ML-100K runs take 5-50 s).
# Then the records (no weights) are copied into docs/results/ml100k and the report rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-results/ml100k}
WORKERS=${WORKERS:-2}
BIN=${BIN:-.venv/bin}
"$BIN/moe-mlora" reproduce ablation --seeds 3 --workers "$WORKERS" --results-dir "$RESULTS"
"$BIN/moe-mlora" reproduce table1 --datasets movielens-100k --seeds 5 --moe-variant authors-code --workers "$WORKERS" \
  --results-dir "$RESULTS"
"$BIN/moe-mlora" reproduce experts --split movielens-100k:gender --seeds 3 --workers "$WORKERS" --results-dir "$RESULTS"
"$BIN/python" benchmarks/ship_records.py "$RESULTS" "${DEST:-docs/results/ml100k}"
