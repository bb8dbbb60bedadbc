"""Scoring new rows with a trained run: raw column values in, one click probability per row out, in order.

    predictor = Predictor.from_run("runs/table-theme-deepfm-moe-mlora-s2024-1a2b3c4d")
    probabilities = predictor.predict(frame)          # a DataFrame with the run's feature and domain columns
    predictor.predict_file("rows.csv", "scored.parquet")   # streams files larger than memory

Values never seen in training take their field's out-of-vocabulary row (moe_mlora.data.vocabulary).
A domain the run does not know is an error, unless `unknown_domain="backbone"`: such rows are scored by
the backbone alone (no adapter), with the domain field averaged out: the mean logit over the training
domains, weighted by their share of the training rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from moe_mlora.adapters import AdapterMode, adapters_of, set_adapter_mode
from moe_mlora.batches import TensorPart
from moe_mlora.data.encoding import Encoding, EncodedRows, RawColumns
from moe_mlora.data.vocabulary import as_strings
from moe_mlora.errors import ConfigError, DataError
from moe_mlora.files import probe_output_file
from moe_mlora.methods import get_method
from moe_mlora.models import CTRModel
from moe_mlora.serving.manifest import RunManifest, load_run, read_encoding
from moe_mlora.serving.stream import Chunk, chunk_writer, count_rows, read_chunks
from moe_mlora.training.config import resolve_device
from moe_mlora.training.evaluation import predict_logits

PROBABILITY = "probability"


class UnknownDomain(str, Enum):
    ERROR = "error"  # a row of a domain the run was not trained on stops the scoring with its location
    BACKBONE = "backbone"  # such rows are scored by the backbone alone, the domain field averaged out


@contextmanager
def adapter_mode(model: CTRModel, mode: AdapterMode) -> Iterator[None]:
    adapters = adapters_of(model)
    before = adapters[0].mode if adapters else None
    if adapters:
        set_adapter_mode(model, mode)
    try:
        yield
    finally:
        if adapters:
            set_adapter_mode(model, before)


class Predictor:
    def __init__(self, model: CTRModel, manifest: RunManifest, encoding: Encoding, batch_size: int = 8192) -> None:
        self.model, self.manifest, self.encoding, self.batch_size = model.eval(), manifest, encoding, batch_size
        self.domain_index = {name: index for index, name in enumerate(manifest.domain_names)}

    @classmethod
    def from_run(cls, folder: str | Path, device: str = "cpu", batch_size: int | None = None) -> "Predictor":
        folder = Path(folder)
        model, manifest = load_run(folder)
        model.to(resolve_device(device))
        batch_size = batch_size or manifest.config.train.eval_batch_size
        return cls(model, manifest, read_encoding(folder, manifest), batch_size)

    @property
    def feature_columns(self) -> list[str]:
        """The raw feature columns a row needs: categorical, numeric, multi-valued."""
        spec = self.manifest.feature_spec
        return [*self.manifest.feature_columns, *spec.numeric_names, *spec.bag_names]

    @property
    def input_columns(self) -> list[str]:
        """The raw columns a row needs: the run's features and its domain column."""
        return [*self.feature_columns, self.manifest.domain_column]

    # -- encoding --------------------------------------------------------------------------------------
    def encode(self, chunk: Chunk, unknown_domain: UnknownDomain) -> TensorPart:
        """The chunk's rows as model inputs; `domains` is -1 for a domain the run does not know."""
        manifest = self.manifest
        if manifest.domain_column not in chunk.frame.columns:
            raise DataError(f"{chunk.source}: missing column '{manifest.domain_column}' (the run's domain column)")
        rows = self._encode(chunk, manifest.domain_column)
        unknown = rows.domains < 0
        if unknown.any() and UnknownDomain(unknown_domain) is UnknownDomain.ERROR:
            row = int(np.argmax(unknown))
            value = as_strings(chunk.frame[manifest.domain_column]).iloc[row]
            raise DataError(f"{chunk.where(row)}, column '{manifest.domain_column}': domain '{value}' "
                            f"is not one of the run's {len(manifest.domain_names)} domains (--unknown-domain backbone "
                            "scores such rows with the backbone alone)")
        return self._tensors(rows, rows.domains)

    def encode_features(self, chunk: Chunk) -> TensorPart:
        """The chunk's features as model inputs (the domain field, when there is one, left at 0; domains 0)."""
        rows = self._encode(chunk, None)
        return self._tensors(rows, np.zeros(len(rows.domains), dtype=np.int64))

    def _encode(self, chunk: Chunk, domain_column: str | None) -> EncodedRows:
        absent = [column for column in self.feature_columns if column not in chunk.frame.columns]
        if absent:
            raise DataError(f"{chunk.source}: missing column(s) {absent}; the run needs {self.input_columns}")
        columns = RawColumns(tuple(self.manifest.feature_columns), domain_column, self.manifest.feature_spec.bag_names)
        return self.encoding.encode(chunk.frame, columns, self.manifest.domain_names, chunk.where)

    @staticmethod
    def _tensors(rows: EncodedRows, domains: np.ndarray) -> TensorPart:
        return TensorPart(torch.from_numpy(rows.codes), torch.from_numpy(domains), torch.zeros(len(domains)),
                          dense=None if rows.dense is None else torch.from_numpy(rows.dense),
                          bags=None if rows.bags is None else torch.from_numpy(rows.bags))

    # -- scoring ---------------------------------------------------------------------------------------
    def _logits(self, rows: TensorPart) -> np.ndarray:
        return predict_logits(self.model, rows, self.batch_size).numpy()

    def require_backbone_path(self) -> None:
        method = get_method(self.manifest.approach)
        if not method.backbone_path:
            raise ConfigError(f"{method.title} has no backbone-alone path (its parts shape every row's score), so "
                              "rows of an unknown domain cannot be scored by the backbone")

    def backbone_logits(self, rows: TensorPart) -> np.ndarray:
        """The backbone alone, the domain field averaged out over the training domains' shares."""
        self.require_backbone_path()
        rows = replace(rows, domains=torch.zeros_like(rows.domains))
        with adapter_mode(self.model, AdapterMode.BACKBONE):
            if not self.manifest.domain_as_feature:
                return self._logits(rows)
            total = np.zeros(len(rows), dtype=np.float64)
            for domain, share in enumerate(self.manifest.domain_shares):
                codes = rows.codes.clone()
                codes[:, -1] = domain
                total += share * self._logits(replace(rows, codes=codes))
            return total.astype(np.float32)

    def score_chunk(self, chunk: Chunk, unknown_domain: UnknownDomain = UnknownDomain.ERROR) -> np.ndarray:
        """Logits of the chunk's rows, in order."""
        rows = self.encode(chunk, unknown_domain)
        unknown = rows.domains < 0
        if not unknown.any():
            return self._logits(rows)
        logits = np.empty(len(rows), dtype=np.float32)
        known = ~unknown
        if known.any():
            logits[known.numpy()] = self._logits(rows.select(known))
        logits[unknown.numpy()] = self.backbone_logits(rows.select(unknown))
        return logits

    def predict_logits(self, frame: pd.DataFrame, unknown_domain: str = "error") -> np.ndarray:
        return self.score_chunk(Chunk(frame.reset_index(drop=True), 0, "input", 0, "row"), UnknownDomain(unknown_domain))

    def predict(self, frame: pd.DataFrame, unknown_domain: str = "error") -> np.ndarray:
        """One click probability per row of `frame`, in order."""
        return _sigmoid(self.predict_logits(frame, unknown_domain))

    def predict_file(self, source: str | Path, output: str | Path, *, unknown_domain: str = "error",
                     chunk_rows: int = 100_000, progress: bool = False) -> int:
        """Score every row of a CSV/TSV/Parquet file into `output` (CSV or Parquet: the domain column and the
        probability, in input order), a chunk at a time; returns the number of rows."""
        source, output = Path(source), Path(output)
        if chunk_rows < 1:
            raise ConfigError(f"chunk rows must be at least 1, got {chunk_rows}")
        if UnknownDomain(unknown_domain) is UnknownDomain.BACKBONE:
            self.require_backbone_path()  # before any row is read
        if source.resolve() == output.resolve():
            raise ConfigError(f"{output}: the output would overwrite the input")
        probe_output_file(output)
        columns = [self.manifest.domain_column, PROBABILITY]
        rows = 0
        with chunk_writer(output, columns) as writer, tqdm(total=count_rows(source), unit="rows", disable=not progress,
                                                          desc=f"scoring {source.name}") as bar:
            for chunk in read_chunks(source, self.input_columns, chunk_rows):
                probabilities = _sigmoid(self.score_chunk(chunk, UnknownDomain(unknown_domain)))
                writer.write(pd.DataFrame({self.manifest.domain_column: chunk.frame[self.manifest.domain_column],
                                           PROBABILITY: probabilities}))
                rows += len(chunk.frame)
                bar.update(len(chunk.frame))
        return rows


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return torch.sigmoid(torch.from_numpy(np.ascontiguousarray(logits))).numpy()
