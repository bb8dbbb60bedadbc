"""A run folder that is self-contained for inference: weights, vocabularies and a versioned manifest.

    RUN/
      manifest.json      format, the run's config, feature spec, raw column names, domain shares,
                         sha256 of the backbone weights the adapters belong to
      vocabulary.json    per field: raw value -> code (moe_mlora.data.vocabulary)
      model.safetensors  the backbone          (moe_mlora.training.checkpoint)
      adapter.*          adapters and gate     (moe_mlora.adapters.io), for MLoRA and MoE-MLoRA
      method.*           another method's parts (moe_mlora.methods.io)

`load_run` rebuilds the trained model from these files alone, no training table needed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from torch import nn

from moe_mlora.adapters import ADAPTER_CONFIG, adapters_of, load_adapters, save_adapters
from moe_mlora.data import EncodedDataset
from moe_mlora.data.encoding import Encoding
from moe_mlora.data.table import DOMAIN
from moe_mlora.errors import DataError, MoeMloraError
from moe_mlora.run_config import RunConfig
from moe_mlora.features import FeatureSpec
from moe_mlora.files import read_versioned_json, write_text_atomic
from moe_mlora.layers.domain_part import domain_parts
from moe_mlora.methods import get_method
from moe_mlora.methods.io import load_method_parts, save_method_parts
from moe_mlora.models import CTRModel
from moe_mlora.training.checkpoint import MODEL_WEIGHTS, backbone_sha256, load_backbone, save_backbone

MANIFEST_FILE, VOCABULARY_FILE = "manifest.json", "vocabulary.json"
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class RunManifest:
    format: int
    model: str
    run_config: dict  # the RunConfig the run was trained with (moe_mlora.run_config)
    spec: dict  # FeatureSpec.to_dict()
    feature_columns: list[str]  # raw table columns, in the order of the spec's fields (numeric and
    # multi-valued columns are the spec's numeric_names and bag_names)
    domain_column: str  # the raw column naming each row's domain
    domain_as_feature: bool  # the spec's last field is the domain id
    domain_shares: list[float]  # each domain's share of the training rows
    training_rows: int
    adapter: dict | None  # {"config": ..., "mode": ...} or None for a plain backbone
    backbone_sha256: str
    added_domains: list[dict] = field(default_factory=list)  # moe_mlora.serving.add_domain reports, in order

    @property
    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec.from_dict(self.spec)

    @property
    def domain_names(self) -> tuple[str, ...]:
        return tuple(self.spec["domain_names"])

    @property
    def config(self) -> RunConfig:
        """The typed RunConfig the run was trained with (its settings' defaults in one place, the dataclasses)."""
        try:
            return RunConfig.from_dict(self.run_config)
        except (TypeError, KeyError, MoeMloraError) as exc:
            raise DataError(f"the run's manifest holds a config this library cannot read ({exc})") from None

    @property
    def approach(self) -> str:
        return self.config.approach.approach


def save_run_weights(model: CTRModel, folder: Path, method: str) -> None:
    """The backbone, and the method's parts (naming the backbone they belong to) when there are any."""
    save_backbone(model, folder)
    if adapters_of(model):
        save_adapters(model, folder, backbone_sha256(model))
    elif domain_parts(model):
        save_method_parts(model, folder, method, backbone_sha256(model))


def write_run_files(folder: Path, model: CTRModel, dataset: EncodedDataset, run_config: dict) -> RunManifest:
    """The manifest and vocabularies of a freshly trained run, beside weights already saved in `folder`."""
    counts = dataset.training_domain_counts()
    shares = counts / max(1, counts.sum())
    manifest = RunManifest(
        format=MANIFEST_FORMAT, model=model.name, run_config=run_config, spec=dataset.spec.to_dict(),
        feature_columns=[name for name in dataset.spec.field_names if name != DOMAIN],
        domain_column=dataset.domain_column, domain_as_feature=DOMAIN in dataset.spec.field_names,
        domain_shares=[float(share) for share in shares], training_rows=int(counts.sum()),
        adapter=None, backbone_sha256="",
    )
    return write_manifest(folder, manifest, model, dataset.encoding)


def write_manifest(folder: Path, manifest: RunManifest, model: CTRModel, encoding: Encoding) -> RunManifest:
    """Write `manifest` (its spec, adapter and backbone hash taken from `model`) and the encoding."""
    adapters = adapters_of(model)
    manifest = replace(manifest, spec=model.spec.to_dict(), backbone_sha256=backbone_sha256(model),
                       adapter={"config": adapters[0].config.to_dict(), "mode": adapters[0].mode.value} if adapters else None)
    spec = model.spec
    write_text_atomic(folder / VOCABULARY_FILE, json.dumps(encoding.to_dict(spec.field_names, spec.bag_names)))
    write_text_atomic(folder / MANIFEST_FILE, json.dumps(asdict(manifest), indent=2))
    return manifest


def read_manifest(folder: Path) -> RunManifest:
    data = read_versioned_json(Path(folder) / MANIFEST_FILE, MANIFEST_FORMAT, "not a run folder (or one written "
                               "before runs were self-contained: train it again)")
    return RunManifest(**data)


def read_encoding(folder: Path, manifest: RunManifest) -> Encoding:
    path = Path(folder) / VOCABULARY_FILE
    spec = manifest.feature_spec
    try:
        return Encoding.from_dict(json.loads(path.read_text()), spec.field_names, spec.bag_names)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: missing or unreadable ({exc})") from None


def load_run(folder: Path) -> tuple[CTRModel, RunManifest]:
    """The trained model of a run folder (backbone and adapters, in eval mode) and its manifest."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if not (folder / MODEL_WEIGHTS).is_file():
        raise DataError(f"{folder}: no {MODEL_WEIGHTS}")
    model = load_backbone(folder)
    found = backbone_sha256(model)
    if found != manifest.backbone_sha256:
        raise DataError(f"{folder / MODEL_WEIGHTS}: backbone sha256 {found[:12]} is not the run's "
                        f"({manifest.backbone_sha256[:12]}); the weights were replaced")
    if manifest.adapter is not None:
        if not (folder / ADAPTER_CONFIG).is_file():
            raise DataError(f"{folder}: the run has adapters but no {ADAPTER_CONFIG}")
        load_adapters(model, folder, backbone_sha256=found)
    elif get_method(manifest.approach).attach is not None:
        config = manifest.config
        load_method_parts(model, folder, config.approach, len(manifest.domain_names), config.train.seed, found)
    return model.eval(), manifest


def model_device(model: nn.Module):
    return next(model.parameters()).device
