#!/usr/bin/env bash
# The paper's benchmark on MovieLens-1M, in the order its report needs it; every step resumes where it stopped.
#   MOE_MLORA_DATA_DIR=../shared/data WORKERS=2 bash benchmarks/ml1m.sh [results-folder]
# 1. Table 1 under equal conditions: 8 backbones x gender/age/occupation x Base, MLoRA, MoE-MLoRA x 3 seeds.
# 2. Figure 2: MoE-MLoRA with k = 1..4 experts per domain by gender, the same 3 seeds (k = 1 is step 1's run).
# 3. The paper's conditions for DeepFM, DCN and AutoInt: single-domain batches, selection by mean AUC, and
#    the authors'-code schedule as MoE-MLoRA's fourth arm; the report sets them beside step 1, cell by cell.
# 4. The field's methods (issue #20) on the paper's protocol: STAR, PEPNet and two more (METHODS) beside the paper's
#    arms for DeepFM, DCN and AutoInt (the Base, MLoRA and MoE-MLoRA runs are step 1's). The two more are the best
#    others on Scenario-Wise Rec's protocol (docs/results/scenario-wise): MMoE and EPNet, 0.8144 pooled AUC each.
# Then the records (no weights) are copied into docs/results/ml1m and the report rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-results/ml1m}
WORKERS=${WORKERS:-2}
BIN=${BIN:-.venv/bin}
"$BIN/moe-mlora" reproduce table1 --datasets movielens-1m --models wdl,nfm,autoint,pnn,dcn,fibinet,deepfm,xdeepfm --seeds 3 \
  --workers "$WORKERS" --results-dir "$RESULTS"
"$BIN/moe-mlora" reproduce experts --split movielens-1m:gender --seeds 3 --workers "$WORKERS" --results-dir "$RESULTS"
"$BIN/moe-mlora" reproduce table1 --datasets movielens-1m --models deepfm,dcn,autoint --seeds 3 --workers "$WORKERS" \
  --batch-order by-domain --select-by mean-auc --moe-variant authors-code --results-dir "$RESULTS"
"$BIN/moe-mlora" reproduce table1 --datasets movielens-1m --models deepfm,dcn,autoint --seeds 3 --workers "$WORKERS" \
  --methods "${METHODS:-star,pepnet,mmoe,epnet}" --results-dir "$RESULTS"
"$BIN/python" benchmarks/ship_records.py "$RESULTS" docs/results/ml1m
