"""From a trained run to served predictions: the self-contained run folder, scoring, export, new domains."""

from moe_mlora.serving.manifest import MANIFEST_FILE, VOCABULARY_FILE, RunManifest, load_run, read_manifest
from moe_mlora.serving.predictor import PROBABILITY, Predictor, UnknownDomain

__all__ = ["MANIFEST_FILE", "PROBABILITY", "VOCABULARY_FILE", "Predictor", "RunManifest", "UnknownDomain", "load_run",
           "read_manifest"]
