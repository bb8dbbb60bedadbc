"""One run end to end: its typed, versioned record, and MoE-MLoRA reusing a Base backbone."""

import json

import pytest

from moe_mlora.data import DatasetConfig, prepare_dataset
from moe_mlora.errors import DataError
from moe_mlora.experiments.records import SCHEMA_VERSION, RunRecord, write_json
from moe_mlora.experiments.run import RunConfig, execute_run
from moe_mlora.models import ModelConfig
from moe_mlora.training.approaches import ApproachConfig
from moe_mlora.training.config import TrainConfig

SMALL = ModelConfig(dnn_hidden=(32, 16))
QUICK = TrainConfig(max_epochs=2, progress=False, seed=4)


@pytest.fixture(scope="module")
def ml100k_age(real_data_dir):
    return prepare_dataset(DatasetConfig("movielens-100k", "age"), real_data_dir)


def config(approach: str, **train) -> RunConfig:
    from dataclasses import replace

    return RunConfig(DatasetConfig("movielens-100k", "age"), "deepfm", SMALL, ApproachConfig(approach),
                     replace(QUICK, **train))


def test_moe_reusing_a_base_backbone_equals_moe_training_phase1_itself(ml100k_age, tmp_path):
    execute_run(config("base"), tmp_path / "shared", dataset=ml100k_age)
    reused = execute_run(config("moe-mlora"), tmp_path / "shared", dataset=ml100k_age)
    alone = execute_run(config("moe-mlora"), tmp_path / "alone", dataset=ml100k_age)
    assert "reused the Base run's backbone" in reused.phases[0].note and not alone.phases[0].note
    assert reused.test.to_dict() == alone.test.to_dict()
    assert [p.restored_valid_score for p in reused.phases] == [p.restored_valid_score for p in alone.phases]


def test_a_reused_backbone_must_match_the_model_exactly(ml100k_age, tmp_path):
    base = config("base")
    execute_run(base, tmp_path, dataset=ml100k_age)
    weights = base.run_dir(tmp_path) / "model.safetensors"
    from safetensors.torch import load_file, save_file

    state = load_file(str(weights))
    state.pop("bias")
    save_file(state, str(weights))
    with pytest.raises(DataError, match=r"not this model's backbone \(missing \['bias'\]"):
        execute_run(config("moe-mlora"), tmp_path, dataset=ml100k_age)


def test_the_record_holds_every_phases_chosen_and_restored_scores_and_the_settings(ml100k_age, tmp_path):
    run = config("moe-mlora", batch_order="by-domain", select_by="mean-auc")
    execute_run(run, tmp_path, dataset=ml100k_age)
    data = json.loads((run.run_dir(tmp_path) / "result.json").read_text())
    assert data["schema"] == SCHEMA_VERSION and data["status"] == "ok" and data["key"] == run.key()
    assert set(data["code"]) == {"commit", "dirty"} and {"torch", "numpy", "moe_mlora"} <= set(data["versions"])
    assert [p["phase"] for p in data["phases"]] == ["phase1-backbone", "phase2-experts", "phase3-gate"]
    for phase in data["phases"]:
        assert (phase["batch_order"], phase["select_by"]) == ("by-domain", "mean-auc")
        assert phase["restored_valid_score"] == pytest.approx(phase["best_valid_score"], abs=1e-6)
    record = RunRecord.read(run.run_dir(tmp_path))
    assert record.config == run and record.test.wauc == data["test"]["wauc"] and record.current
    gate = data["diagnostics"]
    assert gate["gate_chosen_epoch"] == data["phases"][-1]["best_epoch"]
    n_domains = data["n_domains"]
    assert all(g["start_own_weight"] == pytest.approx(1 / n_domains, abs=1e-6) for g in gate["gate"])  # uniform start
    assert gate["mean_own_weight"] == pytest.approx(sum(g["own_weight"] for g in gate["gate"]) / n_domains)
    assert {"cpu_model", "cpu_flags", "blas", "onednn", "threads"} <= set(data["machine"]["numerics"])


def test_a_schema_change_of_moe_mlora_alone_keeps_base_and_mlora_records_current(tmp_path):
    from moe_mlora.experiments.sweep import pending_configs

    runs = [config(approach) for approach in ("base", "mlora", "moe-mlora")]
    for run in runs:
        record = RunRecord("ok", run, schema=3)
        record.write(run.run_dir(tmp_path))
    assert pending_configs(runs, tmp_path) == [runs[2]]  # only MoE-MLoRA's meaning changed in schema 4


def test_records_of_an_older_schema_are_recognised_as_such(tmp_path):
    run = config("base")
    write_json(run.run_dir(tmp_path) / "result.json",
               {"status": "ok", "key": run.key(), "label": run.label, "config": run.to_dict(), "test": {"wauc": 0.7}})
    record = RunRecord.read(run.run_dir(tmp_path))
    assert record is not None and record.schema == 1 and not record.current
    from moe_mlora.experiments.sweep import pending_configs

    assert pending_configs([run], tmp_path) == [run]  # a sweep reruns it


def test_nan_is_never_written_as_json(tmp_path):
    write_json(tmp_path / "x.json", {"a": float("nan"), "b": [1.0, float("inf")]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": None, "b": [1.0, None]}
    assert not list(tmp_path.glob("*.tmp"))


def test_device_and_progress_do_not_change_a_runs_identity():
    assert config("base").key() == config("base", progress=True, device="cuda").key() != config("base", seed=5).key()


def test_threads_are_part_of_a_runs_identity_and_settings_added_later_keep_old_keys():
    from dataclasses import replace

    assert config("base", threads=2).key() != config("base").key()
    assert config("base", precision="bf16").key() != config("base").key()
    # A record written before `threads`, `precision` and `min_count` existed has the same key as today's defaults.
    old = config("base").to_dict()
    del old["train"]["threads"], old["train"]["precision"], old["data"]["min_count"]
    assert RunConfig.from_dict(old).key() == config("base").key()
    assert replace(config("base"), data=DatasetConfig("movielens-100k", "age", min_count=2)).key() != config("base").key()


def test_a_run_computes_with_its_configured_threads_and_records_them(ml100k_age):
    import torch

    before = torch.get_num_threads()
    record = execute_run(config("base", threads=1, max_epochs=1), dataset=ml100k_age)
    assert record.machine["threads"] == 1 and torch.get_num_threads() == before  # restored afterwards


def test_runs_on_different_cpu_models_are_different_numerics():
    from types import SimpleNamespace

    from moe_mlora.experiments.report import numerics_label

    def record(cpu):
        return SimpleNamespace(versions={"torch": "2.13.0+cpu"}, machine={"threads": 1, "numerics": {"cpu_model": cpu}})

    assert numerics_label(record("AMD EPYC")) == "torch 2.13.0+cpu, 1 thread(s), AMD EPYC"
    assert numerics_label(record("AMD EPYC")) != numerics_label(record("Intel(R) Xeon(R) Processor"))
    assert numerics_label(SimpleNamespace(versions={}, machine={})) == "torch ?, ? thread(s)"  # an older record


def test_the_report_flags_differing_numerics_and_lists_unreadable_records(tmp_path, ml100k_age):
    from moe_mlora.experiments.records import numerics_description
    from moe_mlora.experiments.report import write_report

    for threads in (1, 2):
        execute_run(config("base", threads=threads, max_epochs=1), tmp_path, dataset=ml100k_age)
    for name, content in (("truncated", b'{"status": "ok", "con'), ("empty-object", b"{}"), ("binary", b"\xff\xfe")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_bytes(content)
    written = write_report(tmp_path)
    text = "\n".join(path.read_text() for path in written.values() if path.suffix == ".md")
    cpu = numerics_description()["cpu_model"]
    assert "numerics differ between records" in text and f"1 thread(s), {cpu}: 1 runs" in text
    assert f"2 thread(s), {cpu}: 1 runs" in text
    assert "3 unreadable records: binary, empty-object, truncated" in text
    assert text.startswith(f"# moe-mlora results ({tmp_path.name})")
    # Written elsewhere (report RECORDS --out FOLDER), the report is titled by the folder it is written to.
    assert write_report(tmp_path, tmp_path / "ml1m")["report"].read_text().startswith("# moe-mlora results (ml1m)")
