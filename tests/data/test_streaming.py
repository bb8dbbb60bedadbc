"""Out-of-core tables: the streaming encoder gives what the in-memory encoder gives, and training reads
the shards a chunk at a time."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

import moe_mlora.data.streaming as streaming
from data.test_feature_types import table
from moe_mlora.data import DatasetConfig, prepare_dataset
from moe_mlora.errors import ConfigError
from moe_mlora.experiments.run import RunConfig, execute_run
from moe_mlora.serving import Predictor, UnknownDomain
from moe_mlora.serving.stream import Chunk
from moe_mlora.training.approaches import ApproachConfig
from moe_mlora.training.config import TrainConfig
from moe_mlora.training.samplers import BatchOrder, epoch_batches


@pytest.fixture
def parquet(tmp_path, monkeypatch):
    monkeypatch.setattr(streaming, "BATCH_ROWS", 97)  # many record batches and chunks, even for a small table
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 120)
    path = tmp_path / "t.parquet"
    frame = table(900)
    frame["age"] = pd.to_numeric(frame["age"], errors="coerce")  # numbers with missing cells, as Parquet holds them
    frame.to_parquet(path, index=False)
    return path


def config(path, **options) -> DatasetConfig:
    return DatasetConfig("table", split_by="region", features=("user", "item"), table_path=str(path),
                         label_column="click", numeric=("age",), multi_valued=("genres",), **options)


def test_the_streaming_encoder_matches_the_in_memory_one(parquet, tmp_path):
    memory = prepare_dataset(config(parquet, split="column:part"))
    streamed = prepare_dataset(config(parquet, split="column:part", out_of_core=True), cache_dir=tmp_path / "cache")
    assert streamed.spec == memory.spec and streamed.encoding.fields == memory.encoding.fields
    assert streamed.encoding.bags == memory.encoding.bags and streamed.encoding.bag_length == memory.bags.shape[2]
    (ours,), (theirs,) = streamed.encoding.numeric, memory.encoding.numeric
    assert ours.mean == pytest.approx(theirs.mean, rel=1e-9) and ours.std == pytest.approx(theirs.std, rel=1e-9)
    for name in ("train", "valid", "test"):
        on_disk = streamed.part(name)
        rows = torch.cat([chunk.codes for chunk in on_disk.chunks()])
        expected = memory.part(name)
        assert torch.equal(rows, expected.codes) and torch.equal(on_disk.labels, expected.labels)
        assert torch.equal(torch.cat([c.bags for c in on_disk.chunks()]), expected.bags)
        torch.testing.assert_close(torch.cat([c.dense for c in on_disk.chunks()]), expected.dense)
    assert (tmp_path / "cache").is_dir() and len(streamed.part("train").bounds()) > 1


def test_training_in_memory_out_of_core_and_serving_give_the_same_rows_the_same_inputs(parquet, tmp_path):
    """One encoder (moe_mlora.data.encoding): a run's folder encodes the table's rows as training did, in
    memory and out of core (values only in valid/test rows and rare ones meet the same OOV row)."""
    run = RunConfig(config(parquet, split="column:part"), "deepfm", train=TrainConfig(max_epochs=1, progress=False))
    execute_run(run, tmp_path / "runs")
    memory = prepare_dataset(run.data)
    streamed = prepare_dataset(replace(run.data, out_of_core=True), cache_dir=tmp_path / "cache")
    frame = pd.read_parquet(parquet)
    served = Predictor.from_run(run.run_dir(tmp_path / "runs")).encode(Chunk(frame, 0, "t.parquet", 0, "row"),
                                                                       UnknownDomain.ERROR)
    assert torch.equal(served.codes, torch.from_numpy(memory.codes)) and (served.codes[:, :2] == 0).any()
    assert torch.equal(served.domains, torch.from_numpy(memory.domains))
    assert torch.equal(served.bags, torch.from_numpy(memory.bags))
    assert torch.equal(served.dense, torch.from_numpy(memory.dense))
    for name, index in (("train", 0), ("valid", 1), ("test", 2)):
        on_disk, rows = streamed.part(name), torch.from_numpy(memory.split == index)
        assert torch.equal(torch.cat([chunk.codes for chunk in on_disk.chunks()]), served.codes[rows])
        assert torch.equal(torch.cat([chunk.bags for chunk in on_disk.chunks()]), served.bags[rows])
        assert torch.equal(on_disk.domains, served.domains[rows])


def test_an_epoch_over_shards_sees_every_training_row_once_in_a_shuffled_chunk_order(parquet, tmp_path):
    part = prepare_dataset(config(parquet, out_of_core=True), cache_dir=tmp_path / "cache").part("train")
    generator = torch.Generator().manual_seed(0)
    seen = torch.cat([batch.labels for batch in epoch_batches(part, 50, BatchOrder.SHUFFLED, generator)])
    assert len(seen) == len(part) and seen.sum() == part.labels.sum()
    first = [chunk.codes[0, 0].item() for chunk in part.chunks(torch.Generator().manual_seed(1))]
    assert first != [chunk.codes[0, 0].item() for chunk in part.chunks()]  # chunk order is drawn per epoch


@pytest.mark.parametrize("approach, k", [("mlora", 1), ("moe-mlora", 2)])
def test_every_phase_of_the_papers_schedule_trains_from_shards(parquet, tmp_path, approach, k):
    run = RunConfig(config(parquet, out_of_core=True), "deepfm", approach=ApproachConfig(approach, k),
                    train=TrainConfig(max_epochs=2, progress=False))
    record = execute_run(run, tmp_path / "runs")
    assert record.ok and np.isfinite(record.test.wauc) and (run.run_dir(tmp_path / "runs") / "epochs.csv").is_file()
    if approach == "moe-mlora":  # phase 2 ran per expert over the chunks' expert views
        experts = record.phases[1]
        assert experts.granularity == "expert" and len(experts.best_epochs) == 2 * k
        assert sum(len(phase.history) for phase in record.phases) >= 3


def test_the_authors_code_schedule_needs_rows_in_memory(parquet, tmp_path):
    run = RunConfig(config(parquet, out_of_core=True), "deepfm", approach=ApproachConfig("moe-mlora", schedule="authors-code"),
                    train=TrainConfig(max_epochs=2, progress=False))
    with pytest.raises(ConfigError, match="selects one domain's rows at a time"):
        execute_run(run, tmp_path / "runs")


@pytest.mark.parametrize("options, message", [
    (dict(split="time:ts"), "a time split needs the whole table's order"),
    (dict(min_count=0), "give --min-count 1 or more"),
])
def test_streaming_refuses_what_needs_the_whole_table(parquet, tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        prepare_dataset(config(parquet, out_of_core=True, **options), cache_dir=tmp_path / "cache")


def test_a_folder_of_parquet_files_streams_as_one_table(parquet, tmp_path):
    frame = pd.read_parquet(parquet)
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[:400].to_parquet(folder / "a.parquet", index=False)
    frame.iloc[400:].to_parquet(folder / "b.parquet", index=False)
    whole = prepare_dataset(config(parquet, out_of_core=True, split="column:part"), cache_dir=tmp_path / "one")
    split = prepare_dataset(config(folder, out_of_core=True, split="column:part"), cache_dir=tmp_path / "two")
    assert split.part_rows == whole.part_rows and split.encoding == whole.encoding
    assert torch.equal(torch.cat([c.codes for c in split.part("train").chunks()]),
                       torch.cat([c.codes for c in whole.part("train").chunks()]))
