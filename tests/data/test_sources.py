"""The source registry: the CLI's grids, the cache and the loaders ask it, so a new dataset is its loader plus
one registry line."""

import pytest

from moe_mlora.data import DatasetConfig, prepare_dataset
from moe_mlora.data.controlled import ControlledConfig, generate
from moe_mlora.data.sources import SOURCES, Source
from moe_mlora.data.table import DOMAIN, LABEL, InteractionTable
from moe_mlora.errors import ConfigError
from moe_mlora.experiments.grids import expand_splits, parse_split, split_label


def load_controlled(config, data_dir, cache_dir) -> InteractionTable:
    """A stand-in loader: a controlled table with its domains in the column the config splits by."""
    frame, _ = generate(ControlledConfig(n_domains=3, users_per_domain=50, items_per_domain=30, rows=2000))
    frame = frame.rename(columns={"label": LABEL, "domain": DOMAIN}).assign(user_id=frame.user, item_id=frame.item)
    return InteractionTable(name="mine", frame=frame[["user_id", "item_id", LABEL, DOMAIN]],
                            feature_columns=["user_id", "item_id"], domain_field=config.split_by,
                            domain_order=["d0", "d1", "d2"])


def test_a_registered_source_is_known_to_configs_grids_and_the_loader(monkeypatch):
    monkeypatch.setitem(SOURCES, "mine", Source("mine", load_controlled, "region", ("region",)))
    assert expand_splits(["mine"]) == ["mine:region"]
    config = parse_split("mine:region")
    assert config == DatasetConfig("mine") and split_label(config) == "mine-region"
    dataset = prepare_dataset(config)
    assert dataset.spec.domain_names == ("d0", "d1", "d2") and len(dataset.labels) == 2000


def test_an_unknown_dataset_is_an_error_never_a_guess():
    with pytest.raises(ConfigError, match="unknown dataset 'mine'"):
        DatasetConfig("mine")
    with pytest.raises(ConfigError, match="'mine': not a dataset a grid runs"):
        expand_splits(["mine"])  # it used to become mine:gender, mine:age, mine:occupation
