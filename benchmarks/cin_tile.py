"""xDeepFM scoring with the CIN's tiles against one pass, on a device: rows/s and the largest logit difference.

    MOE_MLORA_DATA_DIR=../shared/data python benchmarks/cin_tile.py --device cuda --out OUT.json

The CIN scores in tiles of `scoring_tile` rows when no gradient is kept (layers/interactions.py): on this CPU
that kept the outer products in cache (ML-1M, 29k -> 78k rows/s). On another device the same tiles may cost
more than they save (more kernel launches on a GPU). This times both on ML-1M's gender shapes with the
Table-1 settings, untrained weights (speed does not depend on them), the two alternating `--repeats` times in
this process after a warm-up; run it in several fresh processes for medians.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from moe_mlora.data import DatasetConfig, prepare_dataset  # noqa: E402
from moe_mlora.layers.interactions import CompressedInteractionNetwork  # noqa: E402
from moe_mlora.models import build_model  # noqa: E402
from moe_mlora.training.config import set_seed  # noqa: E402
from moe_mlora.training.evaluation import predict_logits  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu import synchronise  # noqa: E402 - a sibling benchmark script

UNTILED = 1 << 62


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rows", type=int, default=204_800)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    dataset = prepare_dataset(DatasetConfig("movielens-1m", "gender"))
    part = dataset.part("train")
    part = part.select(torch.arange(min(args.rows, len(part))))
    set_seed(0)
    model = build_model("xdeepfm", dataset.spec).to(device)
    cin = next(m for m in model.modules() if isinstance(m, CompressedInteractionNetwork))
    tile = cin.scoring_tile

    def score(rows_per_tile: int) -> tuple[float, torch.Tensor]:
        cin.scoring_tile = rows_per_tile
        synchronise(device)
        start = time.perf_counter()
        logits = predict_logits(model, part)
        synchronise(device)
        return len(part) / (time.perf_counter() - start), logits

    score(tile), score(UNTILED)  # warm-up
    rates: dict[str, list[float]] = {"tiled": [], "one_pass": []}
    last: dict[str, torch.Tensor] = {}
    for repeat in range(args.repeats):
        order = (("tiled", tile), ("one_pass", UNTILED)) if repeat % 2 == 0 else (("one_pass", UNTILED), ("tiled", tile))
        for name, rows_per_tile in order:
            rate, last[name] = score(rows_per_tile)
            rates[name].append(rate)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "threads": torch.get_num_threads(), "torch": torch.__version__, "rows": len(part), "tile": tile,
              "rows_per_s": rates, "max_abs_logit_difference": float((last["tiled"] - last["one_pass"]).abs().max())}
    print(json.dumps(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
