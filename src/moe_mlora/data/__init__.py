"""Data sources, encoding, splitting and caching."""

from moe_mlora.batches import TensorPart
from moe_mlora.data.config import DATASETS, DatasetConfig
from moe_mlora.data.prepare import EncodedDataset, load_interactions, prepare_dataset
from moe_mlora.data.table import InteractionTable

__all__ = [
    "DATASETS", "DatasetConfig", "EncodedDataset", "InteractionTable", "TensorPart", "load_interactions",
    "prepare_dataset",
]
