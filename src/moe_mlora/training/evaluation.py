"""Scoring a model on a part: logits, per-domain metrics, and per-expert scores for expert phases.

Every evaluation merges the adapters afresh at its start and unmerges at its end (see
moe_mlora.adapters.merge), so it always scores the weights of that moment.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import log_loss
from torch import nn

from moe_mlora.adapters import merged_adapters
from moe_mlora.auc import auc_or_none
from moe_mlora.batches import Part
from moe_mlora.training.config import evaluation_autocast
from moe_mlora.training.metrics import Evaluation, evaluate_predictions


@torch.no_grad()
def predict_logits(model: nn.Module, part: Part, batch_size: int = 8192) -> torch.Tensor:
    """Logits for every row, routed by the part's routing ids (domains, or experts in an expert view)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with merged_adapters(model), evaluation_autocast(device):
            out = [model(*chunk.select(slice(s, s + batch_size)).to(device).model_inputs()).float().cpu()
                   for chunk in part.chunks() for s in range(0, len(chunk), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def evaluate(model: nn.Module, part: Part, domain_names: tuple[str, ...], batch_size: int = 8192) -> Evaluation:
    probabilities = torch.sigmoid(predict_logits(model, part, batch_size)).numpy()
    return evaluate_predictions(part.domains.numpy(), part.labels.numpy(), probabilities, domain_names)


def group_scores(model: nn.Module, part: Part, groups: list[int], batch_size: int = 8192) -> dict[int, float]:
    """Each expert's AUC on its own rows of an expert view (negative logloss where those rows hold one class)."""
    if not groups:
        return {}
    wanted = torch.tensor(groups)
    labels, ids, probabilities = [], [], []
    for chunk in part.chunks():  # one in memory; a part on disk, a chunk at a time
        chosen = chunk.select(torch.nonzero(torch.isin(chunk.experts, wanted)).squeeze(1))
        probabilities.append(torch.sigmoid(predict_logits(model, chosen, batch_size)).numpy())
        labels.append(chosen.labels.numpy())
        ids.append(chosen.experts.numpy())
    labels, ids, probabilities = np.concatenate(labels), np.concatenate(ids), np.concatenate(probabilities)
    scores = {}
    for group in groups:
        y, p = labels[ids == group], probabilities[ids == group]
        auc = auc_or_none(y, p)
        if len(y) == 0:
            scores[group] = 0.0
        elif auc is not None:
            scores[group] = auc
        else:
            scores[group] = -float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]))
    return scores
