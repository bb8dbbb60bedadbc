"""Add a domain to a trained run without retraining the others (PEFT's add_adapter, for a domain).

The model grows by exactly what the new domain needs, and only that trains, on the new domain's rows:

* the domain field's embedding (and linear-term) row, when the domain is a feature; it starts at the
  training-share-weighted mean of the existing domains' rows (the "average domain");
* MLoRA: one new adapter; MoE-MLoRA: k new experts and the gate's entry for the domain (its embedding row
  and the gate's outputs for the new experts); another method's parts grow by DomainPart.grow_into (each
  per-domain block gets a new block, starting at the average domain; shared tensors are kept). Existing
  domains get a fixed -1e4 gate prior on the new experts (an exact zero weight after the softmax), and the new domain's prior starts on its own experts,
  as `--gate-init own-domain` does; the gate's mixture over the old experts is learnt from its new row.

Experts are numbered e -> domain e mod n (moe_mlora.adapters.config), so with n + 1 domains the old
experts move to their new numbers; their weights are copied, not changed. Training runs through the one
loop (moe_mlora.training.loop.fit) with Trains.ADDED_DOMAIN: a gradient mask zeroes every other row and the
phase has no weight decay, so every existing weight stays bitwise as it was (checked before writing).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from moe_mlora.adapters import AdapterConfig, AdapterMode, adapters_of, attach_adapters, set_adapter_mode
from moe_mlora.auc import auc_or_none
from moe_mlora.batches import TensorPart
from moe_mlora.data.split import PART_NAMES, stratified_domain_split
from moe_mlora.data.table import DOMAIN
from moe_mlora.data.tabular import binary_labels
from moe_mlora.data.vocabulary import Vocabulary, as_strings
from moe_mlora.errors import ConfigError, DataError
from moe_mlora.files import probe_writable, safe_name, write_text_atomic
from moe_mlora.layers.domain_part import added_domain_rows, backbone_state_keys, domain_parts
from moe_mlora.methods import get_method
from moe_mlora.models import CTRModel, build_model
from moe_mlora.serving.manifest import save_run_weights, write_manifest
from moe_mlora.serving.predictor import Predictor
from moe_mlora.serving.stream import Chunk, read_chunks
from moe_mlora.training.config import TrainConfig
from moe_mlora.training.evaluation import predict_logits
from moe_mlora.training.loop import EpochCallback, fit
from moe_mlora.training.phase import Phase, PhaseName, Trains

REPORT_FILE = "add_domain.json"
EXCLUDED_PRIOR = -1e4  # exp(-1e4) is exactly 0 in float32: old domains never route to the new experts
MIN_ROWS = 20


@dataclass
class AddedDomainReport:
    source: str
    domain: str
    rows: dict[str, int]
    positives: dict[str, int]
    epochs: int
    best_epoch: int
    valid_auc: float | None
    test_auc: float | None
    backbone_valid_auc: float | None  # the source run's backbone alone (--unknown-domain backbone)
    backbone_test_auc: float | None
    seconds: float


def add_domain(
    run: str | Path,
    table: str | Path,
    domain: str,
    output: str | Path | None = None,
    *,
    train: TrainConfig | None = None,
    on_epoch: EpochCallback | None = None,
) -> tuple[Path, AddedDomainReport]:
    """Extend the run in `run` by `domain`, trained on the rows of `table`; write the result as a new run."""
    started = time.perf_counter()
    run = Path(run)
    source = Predictor.from_run(run)
    manifest, encoding = source.manifest, source.encoding
    method = get_method(manifest.approach)
    if not method.grows:
        raise ConfigError(f"{method.title} has no growth rule for a new domain, so add-domain cannot extend its runs")
    if domain in manifest.domain_names:
        raise ConfigError(f"domain '{domain}' is already one of the run's domains")
    if not domain.strip():
        raise ConfigError("the new domain needs a name")
    output = Path(output) if output is not None else run.parent / f"{run.name}+{safe_name(domain)}"
    if (output / "manifest.json").exists():
        raise ConfigError(f"{output}: already holds a run; name another --output")
    if output.exists() and not output.is_dir():
        raise ConfigError(f"{output}: is a file; name a folder for the new run")
    probe_writable(output)  # before the training, not after it
    run_config = manifest.config
    train = train or replace(run_config.train, progress=False)

    rows, labels = _read_rows(Path(table), source, run_config.data.label_column, domain)
    split = stratified_domain_split(np.zeros(len(labels), dtype=np.int64), labels, seed=run_config.data.split_seed)
    model, new_id = extend_model(source.model, manifest.domain_shares, domain, run_config.approach, run_config.train.seed)
    if manifest.domain_as_feature:
        rows.codes[:, -1] = new_id
    rows = replace(rows, domains=torch.full((len(labels),), new_id, dtype=torch.int64),
                   labels=torch.from_numpy(labels.astype(np.float32)))
    parts = {name: rows.select(torch.from_numpy(split == index)) for name, index in PART_NAMES.items()}

    before = {name: value.detach().clone() for name, value in model.state_dict().items()}
    masks = new_rows_masks(model, new_id)
    phase = Phase(PhaseName.ADDED_DOMAIN, Trains.ADDED_DOMAIN, _mode(model), seed_key=f"add-domain:{domain}",
                  weight_decay=False)
    hooks = [p.register_hook(lambda grad, keep=keep: grad * keep) for p, keep in masks]
    try:
        result = fit(model, phase, parts["train"], parts["valid"], model.spec.domain_names, train, on_epoch=on_epoch)
    finally:
        for hook in hooks:
            hook.remove()
    if adapters_of(model):
        set_adapter_mode(model, _mode(model))
    _check_unchanged(model, before, new_id, masks)

    def backbone_auc(name: str) -> float | None:  # only where the method has a backbone-alone path
        return _auc(parts[name], source.backbone_logits(parts[name])) if method.backbone_path else None

    report = AddedDomainReport(
        source=str(run), domain=domain,
        rows={name: len(part) for name, part in parts.items()},
        positives={name: int(part.labels.sum()) for name, part in parts.items()},
        epochs=len(result.history), best_epoch=result.best_epoch,
        valid_auc=_auc(parts["valid"], predict_logits(model, parts["valid"], train.eval_batch_size).numpy()),
        test_auc=_auc(parts["test"], predict_logits(model, parts["test"], train.eval_batch_size).numpy()),
        backbone_valid_auc=backbone_auc("valid"), backbone_test_auc=backbone_auc("test"),
        seconds=time.perf_counter() - started,
    )
    fields = list(encoding.fields)
    if manifest.domain_as_feature:
        fields[-1] = Vocabulary((*fields[-1].values, domain), oov=False)
    total = manifest.training_rows + len(parts["train"])
    shares = [share * manifest.training_rows / total for share in manifest.domain_shares] + [len(parts["train"]) / total]
    new_manifest = replace(manifest, domain_shares=shares, training_rows=total,
                           added_domains=[*manifest.added_domains, asdict(report)])
    save_run_weights(model, output, manifest.approach)
    write_manifest(output, new_manifest, model, replace(encoding, fields=tuple(fields)))
    write_text_atomic(output / REPORT_FILE, json.dumps(asdict(report), indent=2))
    return output, report


def _mode(model: CTRModel) -> AdapterMode | None:
    adapters = adapters_of(model)
    if not adapters:
        return None
    return AdapterMode.MIXTURE if adapters[0].config.kind == "moe-mlora" else AdapterMode.DOMAIN


def _read_rows(path: Path, source: Predictor, label: str, domain: str) -> tuple[TensorPart, np.ndarray]:
    manifest = source.manifest
    chunks = list(read_chunks(path, [*source.feature_columns, label], 1_000_000, optional=(manifest.domain_column,)))
    frame = pd.concat([chunk.frame for chunk in chunks], ignore_index=True) if chunks else pd.DataFrame()
    chunk = Chunk(frame, 0, str(path), chunks[0].line_offset if chunks else 0, chunks[0].unit if chunks else "row")
    if manifest.domain_column in frame.columns:
        other = (as_strings(frame[manifest.domain_column]) != domain).to_numpy()
        if other.any():
            row = int(np.argmax(other))
            raise DataError(f"{chunk.where(row)}, column '{manifest.domain_column}': a row of domain "
                            f"'{frame[manifest.domain_column].iloc[row]}'; the table must hold only the new domain '{domain}'")
    labels = binary_labels(frame[label], lambda row: f"{chunk.where(row)}, column '{label}'") if len(frame) else np.zeros(0, np.int8)
    if len(labels) < MIN_ROWS or labels.min() == labels.max():
        raise DataError(f"{path}: a new domain needs at least {MIN_ROWS} rows with both labels "
                        f"(found {len(labels)} rows, {int(labels.sum())} positive)")
    return source.encode_features(chunk), labels


def _auc(part: TensorPart, logits: np.ndarray) -> float | None:
    return auc_or_none(part.labels.numpy(), logits)


# -- growing the model ---------------------------------------------------------------------------------------
def extend_model(model: CTRModel, shares: list[float], domain: str, approach=None, run_seed: int = 0) -> tuple[CTRModel, int]:
    """A copy of `model` with one more domain (see the module docstring); returns it and the new domain's id."""
    spec, new_id = model.spec, model.spec.n_domains
    cardinalities = list(spec.cardinalities)
    has_field = DOMAIN in spec.field_names
    if has_field:
        if spec.field_names[-1] != DOMAIN:
            raise ConfigError("the domain field must be the last field to grow it")
        cardinalities[-1] += 1
    grown_spec = replace(spec, cardinalities=tuple(cardinalities), domain_names=(*spec.domain_names, domain))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        grown = build_model(model.name, grown_spec, model.config)
    old_state, weights = model.state_dict(), torch.tensor(shares, dtype=torch.float32)
    new_state = grown.state_dict()
    for name in backbone_state_keys(model):
        value = old_state[name]
        if new_state[name].shape == value.shape:
            new_state[name] = value.clone()
        else:  # a field table: the domain field's rows are the last ones; the new row is the mean domain
            grown_value = value.new_empty(new_state[name].shape)
            grown_value[:-1] = value
            grown_value[-1] = (weights[:, None] * value[-spec.n_domains:]).sum(0)
            new_state[name] = grown_value
    grown.load_state_dict(new_state)
    adapters = adapters_of(model)
    if adapters:
        config = adapters[0].config
        grown_config = replace(config, n_domains=config.n_domains + 1)
        for old, new in zip(adapters, attach_adapters(grown, grown_config)):
            _grow_adapter(old, new, config, grown_config)
    elif domain_parts(model):  # another method's parts: built for n + 1 domains, then grown by the generic rule
        get_method(approach.approach).plug_into(grown, spec.n_domains + 1, run_seed, approach)
        for (_, old), (_, new) in zip(domain_parts(model), domain_parts(grown)):
            old.grow_into(new, weights)
    return grown.to(next(model.parameters()).device), new_id


@torch.no_grad()
def _grow_adapter(old, new, config: AdapterConfig, grown: AdapterConfig) -> None:
    k, n = config.experts_per_domain, config.n_domains
    moved = torch.tensor([(e % n) + (e // n) * (n + 1) for e in range(config.n_experts)])  # old expert -> new number
    added = grown.experts_of_domain(torch.tensor([n] * k), torch.arange(k))
    for tensors in ("down", "up", "bias"):
        for old_param, new_param in zip(getattr(old.experts, tensors), getattr(new.experts, tensors)):
            new_param[moved] = old_param
    new.mode = old.mode
    if old.gate is None:
        return
    new.gate.domain_embedding.weight[:n] = old.gate.domain_embedding.weight
    new.gate.to_experts.weight[moved] = old.gate.to_experts.weight
    new.gate.to_experts.bias[moved] = old.gate.to_experts.bias
    prior = torch.full_like(new.gate.prior, 0.0)
    prior[:n] = EXCLUDED_PRIOR
    prior[:n, moved] = old.gate.prior
    own = grown.ownership()[n]
    prior[n] = own * float(np.log((grown.n_experts - k) / k / 1e-4)) if grown.n_experts > k else 0.0
    new.gate.prior.copy_(prior)
    assert set(added.tolist()).isdisjoint(moved.tolist())


def new_rows_masks(model: CTRModel, new_id: int) -> list[tuple[nn.Parameter, torch.Tensor]]:
    """(parameter, 0/1 mask) for every tensor Trains.ADDED_DOMAIN trains: 1 on the new domain's rows only."""
    masks = []
    for table in model.field_tables():
        keep = torch.zeros_like(table)
        if DOMAIN in model.spec.field_names:
            keep[-1] = 1.0  # the domain field is the last one: its newest row is the new domain's
        masks.append((table, keep))
    for adapter in adapters_of(model):
        k = adapter.config.experts_per_domain
        added = adapter.config.experts_of_domain(torch.full((k,), new_id), torch.arange(k))
        tensors = list(adapter.experts.parameters())
        if adapter.gate is not None:
            tensors += [adapter.gate.to_experts.weight, adapter.gate.to_experts.bias]
            keep = torch.zeros_like(adapter.gate.domain_embedding.weight)
            keep[new_id] = 1.0
            masks.append((adapter.gate.domain_embedding.weight, keep))
        for param in tensors:
            keep = torch.zeros_like(param)
            keep[added] = 1.0
            masks.append((param, keep))
    for param, rows in added_domain_rows(model):
        keep = torch.zeros_like(param)
        keep[rows] = 1.0
        masks.append((param, keep))
    return masks


@torch.no_grad()
def _check_unchanged(model: CTRModel, before: dict[str, torch.Tensor], new_id: int, masks) -> None:
    """Every weight outside the new domain's rows is bitwise what it was before training."""
    trained = {id(param): keep for param, keep in masks}
    for name, param in model.named_parameters():
        keep = trained.get(id(param))
        old = before[name]
        fixed = torch.ones_like(old, dtype=torch.bool) if keep is None else keep == 0
        if not torch.equal(param[fixed], old[fixed]):
            raise RuntimeError(f"adding a domain changed existing weights of {name}; this is a bug")
