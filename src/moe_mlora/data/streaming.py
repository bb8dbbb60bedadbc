"""Out-of-core tables: a Parquet file or folder larger than memory, encoded in two streaming passes into
shards on disk and trained from them chunk by chunk (`DatasetConfig(out_of_core=True)`, `--out-of-core`).

Pass 1 reads record batches and counts, over the training rows: each field's values, each multi-valued
field's tokens, each numeric column's sums; pass 2 encodes every batch with the fitted vocabularies and
writes each part's arrays (`.npy`) at its running offset. Both passes see each record batch as a pandas
frame, and pass 2 encodes it with the same encoder as training in memory and serving
(moe_mlora.data.encoding), so the same rows get the same codes on every path. Training and evaluation read
a part a chunk at a time through a memory map that is dropped after the chunk is copied, so memory holds
one chunk, the model, and the validation labels, whatever the table's size.

Where out of core differs from in memory, and why: the random split is drawn per row (60/20/20, seeded by
the row's position), not stratified per domain and label, which would need every row's domain and label
before the first row is placed; the vocabulary is always the training rows' with an OOV row (--min-count
1 or more), since the paper's vocabulary over all rows would need a third pass; a time split needs the
whole table's order and is refused here. A chunk's batches are shuffled within
the chunk and the chunks' order each epoch. MoE-MLoRA's phase 2 sees each chunk through its expert view
(ShardedView); the authors'-code schedule, whose phase 2 selects one domain's rows at a time, needs the
rows in memory and is refused with one line.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import torch

from moe_mlora.batches import TensorPart
from moe_mlora.data.encoding import Encoding, RawColumns
from moe_mlora.data.feature_types import NumericColumn, Tokens, parse_numbers
from moe_mlora.data.config import SPLIT_NAMES, DatasetConfig
from moe_mlora.data.split import PART_NAMES
from moe_mlora.data.table import DOMAIN
from moe_mlora.data.tabular import binary_labels
from moe_mlora.data.vocabulary import Vocabulary, as_strings, fit_counts, string_counts
from moe_mlora.errors import ConfigError, DataError
from moe_mlora.features import FeatureSpec
from moe_mlora.files import write_text_atomic

BATCH_ROWS = 1 << 18  # rows per record batch while encoding
CHUNK_ROWS = 1 << 20  # rows per chunk while training and evaluating
META_FILE = "shards.json"


# -- reading -------------------------------------------------------------------------------------------------
@dataclass
class ShardedPart:
    """One part's encoded rows on disk. `chunks()` yields TensorParts of at most CHUNK_ROWS rows."""

    folder: Path
    name: str
    rows: int
    chunk_rows: int = CHUNK_ROWS
    _small: dict = field(default_factory=dict, repr=False)
    in_memory: ClassVar[bool] = False

    def __len__(self) -> int:
        return self.rows

    def _array(self, kind: str, start: int, stop: int) -> np.ndarray | None:
        path = self.folder / f"{self.name}.{kind}.npy"
        if not path.is_file():
            return None
        mapped = np.load(path, mmap_mode="r")
        out = np.array(mapped[start:stop])  # a copy: the map (and its resident pages) goes with `mapped`
        del mapped
        return out

    def chunk(self, start: int, stop: int) -> TensorPart:
        arrays = {kind: self._array(kind, start, stop) for kind in ("codes", "domains", "labels", "dense", "bags")}
        return TensorPart(torch.from_numpy(arrays["codes"].astype(np.int64)),
                          torch.from_numpy(arrays["domains"].astype(np.int64)),
                          torch.from_numpy(arrays["labels"].astype(np.float32)),
                          dense=None if arrays["dense"] is None else torch.from_numpy(arrays["dense"]),
                          bags=None if arrays["bags"] is None else torch.from_numpy(arrays["bags"].astype(np.int64)))

    def bounds(self) -> list[tuple[int, int]]:
        return [(start, min(start + self.chunk_rows, self.rows)) for start in range(0, self.rows, self.chunk_rows)]

    def chunks(self, generator: torch.Generator | None = None):
        """The part's chunks, in file order, or in a random order drawn from `generator`."""
        bounds = self.bounds()
        order = torch.randperm(len(bounds), generator=generator).tolist() if generator is not None else range(len(bounds))
        for index in order:
            yield self.chunk(*bounds[index])

    def _whole(self, kind: str, dtype) -> torch.Tensor:
        if kind not in self._small:
            self._small[kind] = torch.from_numpy(self._array(kind, 0, self.rows).astype(dtype))
        return self._small[kind]

    @property
    def domains(self) -> torch.Tensor:
        return self._whole("domains", np.int64)

    @property
    def labels(self) -> torch.Tensor:
        return self._whole("labels", np.float32)

    def expert_view(self, view, copies: int) -> "ShardedView":
        """The part as `view` sees it (e.g. MoE-MLoRA's expert view, `copies` rows per row), chunk by chunk."""
        return ShardedView(self, view, copies)


@dataclass
class ShardedView:
    """A ShardedPart seen through a per-chunk view that repeats each row `copies` times (the expert view):
    chunks are the viewed chunks; `experts` holds every viewed row's expert id (in chunk order)."""

    part: ShardedPart
    view: object  # TensorPart -> TensorPart
    copies: int
    _experts: torch.Tensor | None = field(default=None, repr=False)
    in_memory: ClassVar[bool] = False

    def __len__(self) -> int:
        return len(self.part) * self.copies

    def chunks(self, generator: torch.Generator | None = None):
        for chunk in self.part.chunks(generator):
            yield self.view(chunk)

    @property
    def experts(self) -> torch.Tensor:
        if self._experts is None:  # the view of the domain ids alone: no feature is read
            viewed = []
            for start, stop in self.part.bounds():
                domains = torch.from_numpy(self.part._array("domains", start, stop).astype(np.int64))
                ids = TensorPart(torch.empty(len(domains), 0, dtype=torch.int64), domains, torch.zeros(len(domains)))
                viewed.append(self.view(ids).experts)
            self._experts = torch.cat(viewed)
        return self._experts


@dataclass
class StreamedDataset:
    """What prepare_dataset gives for an out-of-core table: the spec, the encoding, and parts on disk."""

    name: str
    spec: FeatureSpec
    encoding: Encoding
    folder: Path
    part_rows: dict[str, int]
    training_domain_rows: list[int]
    domain_column: str
    notes: list[str] = field(default_factory=list)
    synthetic: bool = False

    def part(self, which: str) -> ShardedPart:
        return ShardedPart(self.folder, which, self.part_rows[which], CHUNK_ROWS)

    @property
    def display_name(self) -> str:
        return self.name

    def training_domain_counts(self) -> np.ndarray:
        return np.array(self.training_domain_rows)


# -- encoding ------------------------------------------------------------------------------------------------
def stream_dataset(config: DatasetConfig, folder: Path) -> StreamedDataset:
    """The sharded dataset of `config` in `folder`, encoding it first unless a finished encoding is there."""
    if (folder / META_FILE).is_file():
        return _read_meta(folder)
    kind, column, _ = config.split_parts
    if kind == "time":
        raise ConfigError("--out-of-core splits rows at random or by a column:COLUMN split; a time split needs the "
                          "whole table's order")
    if not config.min_count:
        raise ConfigError("--out-of-core fits vocabularies on the training rows: give --min-count 1 or more")
    source = Path(config.table_path)
    try:
        dataset = ds.dataset(source, format="parquet")
    except (pa.ArrowInvalid, OSError, FileNotFoundError) as exc:
        raise DataError(f"{source}: not a readable Parquet file or folder ({exc})") from None
    categorical, numeric, bags = list(config.features), list(config.numeric), list(config.multi_valued)
    wanted = [*categorical, *numeric, *bags, config.label_column, config.split_by, *([column] if column else [])]
    absent = [name for name in wanted if name not in dataset.schema.names]
    if absent:
        raise DataError(f"{source}: unknown column(s) {absent}; the table has {dataset.schema.names}")
    nested = [name for name in [*categorical, *bags, config.split_by] if pa.types.is_nested(dataset.schema.field(name).type)]
    if nested:
        raise DataError(f"{source}, column '{nested[0]}': a {dataset.schema.field(nested[0]).type} column cannot be a "
                        "categorical feature")
    folder.mkdir(parents=True, exist_ok=True)

    counts = {name: Counter() for name in [*categorical, *bags]}
    sums = {name: np.zeros(3) for name in numeric}  # count, sum, sum of squares over training rows
    domain_counts: Counter = Counter()
    part_rows = Counter()
    bag_length = 1
    for batch, parts, offset in _batches(dataset, wanted, config, column):
        training = parts == PART_NAMES["train"]
        frame = batch.to_pandas()
        for part, rows in zip(*np.unique(parts, return_counts=True)):
            part_rows[int(part)] += int(rows)
        domain_counts.update(string_counts(frame[config.split_by]))
        for name in categorical:
            counts[name].update(string_counts(frame[name][training]))
        for name in numeric:
            values = parse_numbers(frame[name], name, lambda row: f"{source}, row {offset + row}")[training]
            known = values[~np.isnan(values)]
            sums[name] += (len(known), known.sum(), (known ** 2).sum())
        for name in bags:
            tokens = Tokens.of(frame[name], config.multi_separator)  # split once; counted over training rows
            bag_length = max(bag_length, tokens.longest())
            counts[name].update(tokens.counts(training))
    domains = sorted(domain_counts)
    vocabularies = [fit_counts(counts[name], config.min_count) for name in categorical]
    if config.domain_as_feature:
        vocabularies.append(Vocabulary(tuple(domains), oov=False))
    numeric_columns = []
    for name in numeric:
        n, total, squares = sums[name]
        if not n:
            raise DataError(f"{source}, column '{name}': no numeric value in the training rows")
        mean = total / n
        numeric_columns.append(NumericColumn(name, float(mean), float(np.sqrt(max(squares / n - mean ** 2, 0))) or 1.0))
    bag_vocabularies = [fit_counts(counts[name], config.min_count) for name in bags]
    encoding = Encoding(tuple(vocabularies), tuple(numeric_columns), tuple(bag_vocabularies),
                        bag_length if bags else 0, config.multi_separator)
    names = [*categorical, *([DOMAIN] if config.domain_as_feature else [])]
    spec = FeatureSpec(tuple(names), tuple(v.size for v in vocabularies), tuple(domains), tuple(numeric), tuple(bags),
                       tuple(v.size for v in bag_vocabularies))

    rows = {name: part_rows[index] for name, index in PART_NAMES.items()}
    if not rows["train"]:
        raise DataError(f"{source}: the split leaves no training rows")
    for name, count in rows.items():
        _create_part(folder, name, count, spec, encoding.bag_length)
    cursors = dict.fromkeys(rows, 0)
    training_domains = np.zeros(len(domains), dtype=np.int64)
    columns = RawColumns(tuple(categorical), config.split_by, tuple(bags))
    for batch, parts, offset in _batches(dataset, wanted, config, column):
        frame = batch.to_pandas()
        where = lambda row, offset=offset: f"{source}, row {offset + row}"  # noqa: E731
        encoded_rows = encoding.encode(frame, columns, domains, where)
        encoded = {"codes": encoded_rows.codes.astype(np.int32), "domains": encoded_rows.domains.astype(np.int16),
                   "labels": binary_labels(frame[config.label_column], lambda row: f"{where(row)}, column '{config.label_column}'")}
        if encoded_rows.dense is not None:
            encoded["dense"] = encoded_rows.dense
        if encoded_rows.bags is not None:
            encoded["bags"] = encoded_rows.bags.astype(np.int32)
        training_domains += np.bincount(encoded["domains"][parts == PART_NAMES["train"]], minlength=len(domains))
        for name, index in PART_NAMES.items():
            chosen = parts == index
            start, stop = cursors[name], cursors[name] + int(chosen.sum())
            for kind, array in encoded.items():  # mapped for this write only, so written pages leave memory
                target = np.load(folder / f"{name}.{kind}.npy", mmap_mode="r+")
                target[start:stop] = array[chosen]
                target.flush()
                del target
            cursors[name] = stop
    meta = {"name": source.name, "spec": spec.to_dict(), "encoding": encoding.to_dict(spec.field_names, spec.bag_names),
            "part_rows": rows, "training_domain_rows": training_domains.tolist(), "domain_column": config.split_by}
    write_text_atomic(folder / META_FILE, json.dumps(meta))  # last: a folder without it is unfinished
    return _read_meta(folder)


def _read_meta(folder: Path) -> StreamedDataset:
    meta = json.loads((folder / META_FILE).read_text())
    spec = FeatureSpec.from_dict(meta["spec"])
    return StreamedDataset(meta["name"], spec, Encoding.from_dict(meta["encoding"], spec.field_names, spec.bag_names),
                           folder, meta["part_rows"], meta["training_domain_rows"], meta["domain_column"])


def _batches(dataset, wanted: list[str], config: DatasetConfig, split_column: str):
    """(record batch, part of each row, index of its first row) over the whole table, in file order."""
    offset = 0
    # Little read-ahead: the default (16 batches, 4 files ahead) alone held gigabytes of decoded columns.
    batches = dataset.to_batches(columns=list(dict.fromkeys(wanted)), batch_size=BATCH_ROWS, batch_readahead=1,
                                 fragment_readahead=1, use_threads=False)
    for batch in batches:
        if not batch.num_rows:
            continue
        if split_column:
            names = as_strings(batch.column(split_column).to_pandas()).str.strip().str.lower().map(SPLIT_NAMES)
            if names.isna().any():
                row = int(np.argmax(names.isna().to_numpy()))
                raise DataError(f"{config.table_path}, row {offset + row}, column '{split_column}': not one of "
                                "train, valid, test")
            parts = names.to_numpy(dtype=np.int8)
        else:
            draws = np.random.default_rng([config.split_seed, offset]).random(batch.num_rows)
            parts = np.where(draws < 0.6, PART_NAMES["train"], np.where(draws < 0.8, PART_NAMES["valid"],
                                                                         PART_NAMES["test"])).astype(np.int8)
        yield batch, parts, offset
        offset += batch.num_rows


def _create_part(folder: Path, name: str, rows: int, spec: FeatureSpec, bag_length: int) -> None:
    shapes = {"codes": ((rows, spec.n_fields), np.int32), "domains": ((rows,), np.int16), "labels": ((rows,), np.int8)}
    if spec.n_dense:
        shapes["dense"] = ((rows, spec.n_dense), np.float32)
    if spec.n_bags:
        shapes["bags"] = ((rows, spec.n_bags, bag_length), np.int32)
    for kind, (shape, dtype) in shapes.items():
        created = np.lib.format.open_memmap(folder / f"{name}.{kind}.npy", mode="w+", dtype=dtype, shape=shape)
        del created
