"""A setting is one field: the command line's options and a run's key come from the config dataclasses."""

from dataclasses import dataclass, fields

import typer
from typer.main import get_command
from typer.testing import CliRunner

from moe_mlora.cli import app
from moe_mlora.cli.options import Settings, with_settings
from moe_mlora.data import DatasetConfig
from moe_mlora.run_config import FOUNDING_SETTINGS, RunConfig, SECTIONS
from moe_mlora.settings import help_of, in_identity, setting
from moe_mlora.training.approaches import ApproachConfig
from moe_mlora.training.config import TrainConfig


def options_of(*path: str) -> set[str]:
    command = get_command(app)
    for name in path:
        command = command.commands[name]
    return {param.name for param in command.params}


def documented(kind) -> set[str]:
    return {spec.name for spec in fields(kind) if help_of(spec) is not None}


def test_every_documented_setting_is_an_option_of_train_and_every_training_one_of_each_sweep():
    assert documented(TrainConfig) | documented(ApproachConfig) | documented(DatasetConfig) | {"model"} <= options_of("train")
    sweep_settings = documented(TrainConfig) - {"seed", "progress", "device"}
    for sweep in ("table1", "experts", "ablation", "controlled"):
        assert sweep_settings <= options_of("reproduce", sweep), sweep
        assert not {"seed", "progress", "device"} & options_of("reproduce", sweep)


def test_a_setting_added_to_a_dataclass_becomes_an_option_with_its_type_default_and_help():
    @dataclass(frozen=True)
    class Extended(TrainConfig):
        gradient_clip: float = setting(0.0, help="Clip gradients to this norm (0: no clipping).")

    seen = {}
    toy = typer.Typer(rich_markup_mode=None)

    @toy.command()
    @with_settings(("train", Extended), exclude=("device",))
    def run(context: typer.Context, config_options: Settings, label: str = "x") -> None:
        seen.update(config_options.of("train"), label=label, given=config_options.given)

    result = CliRunner().invoke(toy, ["--gradient-clip", "0.5", "--patience", "7", "--label", "y"])
    assert result.exit_code == 0, result.output
    assert seen["gradient_clip"] == 0.5 and seen["patience"] == 7 and seen["batch_size"] == 1024 and seen["label"] == "y"
    assert seen["given"] == {"gradient_clip", "patience"} and "device" not in seen
    assert "Clip gradients to this norm (0: no clipping)." in " ".join(CliRunner().invoke(toy, ["--help"]).output.split())
    assert CliRunner().invoke(toy, ["--gradient-clip", "much"]).exit_code == 2  # typed like its field


def test_a_list_setting_is_given_as_comma_separated_text_and_its_default_shown_so():
    seen = {}
    toy = typer.Typer(rich_markup_mode=None)

    @toy.command()
    @with_settings(("data", DatasetConfig))
    def run(config_options: Settings) -> None:
        seen.update(config_options.of("data"))

    assert CliRunner().invoke(toy, ["--features", "user_id, item_id,,age"]).exit_code == 0
    assert seen["features"] == ["user_id", "item_id", "age"] and seen["numeric"] == []
    assert "[default: user_id,item_id]" in " ".join(CliRunner().invoke(toy, ["--help"]).output.split())


def test_a_run_key_leaves_out_what_cannot_change_numbers_and_later_settings_at_their_default():
    base = RunConfig()
    assert base.key() == RunConfig(train=TrainConfig(progress=False, device="cuda:1")).key()
    assert not in_identity(next(f for f in fields(TrainConfig) if f.name == "device"))
    for section, kind in SECTIONS.items():  # the founding list is history: every name in it is a field still
        assert set(FOUNDING_SETTINGS[section]) <= {spec.name for spec in fields(kind)}, section
    later = [(section, spec.name) for section, kind in SECTIONS.items() for spec in fields(kind)
             if spec.name not in FOUNDING_SETTINGS[section] and in_identity(spec)]
    assert ("train", "weight_decay") in later and ("data", "min_count") in later
    assert RunConfig(train=TrainConfig(weight_decay=1e-5)).key() != base.key()
    old = base.to_dict()  # a record written before the later settings existed keeps today's key
    for section, name in later:
        del old[section][name]
    assert RunConfig.from_dict(old).key() == base.key()
