"""The paper's arms: Base (the bare backbone), MLoRA (Yang et al., 2024) and MoE-MLoRA, whose parts are the
LoRA adapters of moe_mlora.adapters. Their phases are here; what each phase does between them (the gate's
start, the expert views) is in moe_mlora.training.approaches."""

from __future__ import annotations

from moe_mlora.adapters import AdapterMode, attach_adapters
from moe_mlora.methods.method import Method
from moe_mlora.training.phase import (
    Granularity,
    Optimizer,
    Phase,
    PhaseName,
    Rows,
    Trains,
)

BASE_PHASE = Phase(PhaseName.BASE, Trains.ALL, None, seed_key="backbone")
MLORA_PHASE = Phase(PhaseName.MLORA, Trains.ALL, AdapterMode.DOMAIN, seed_key="mlora")
MOE_BACKBONE = Phase(PhaseName.BACKBONE, Trains.BACKBONE, AdapterMode.BACKBONE, seed_key="backbone")  # = Base, bitwise
MOE_EXPERTS = Phase(PhaseName.EXPERTS, Trains.EXPERTS, AdapterMode.EXPERT, seed_key="experts", rows=Rows.OWN_DOMAIN,
                    granularity=Granularity.EXPERT, optimizer=Optimizer.ADAM_PER_EXPERT, start_counts=True)
MOE_GATE = Phase(PhaseName.GATE, Trains.GATE, AdapterMode.MIXTURE, seed_key="gate", start_counts=True)
_AUTHORS = dict(trains=Trains.ALL_BUT_GATE_EMBEDDING, mode=AdapterMode.MIXTURE, revert_each_epoch=True)
AUTHORS_ALL = Phase(PhaseName.AUTHORS_ALL, seed_key="authors-1", **_AUTHORS)
AUTHORS_DOMAINS = Phase(PhaseName.AUTHORS_DOMAINS, seed_key="authors-2", rows=Rows.EACH_EXPERTS_DOMAIN,
                        start_counts=True, **_AUTHORS)
AUTHORS_GATE = Phase(PhaseName.AUTHORS_GATE, seed_key="authors-3", start_counts=True, **_AUTHORS)
AUTHORS_CODE_PHASES = (AUTHORS_ALL, AUTHORS_DOMAINS, AUTHORS_GATE)


def attach_lora(model, n_domains: int, run_seed: int, approach) -> None:
    attach_adapters(model, approach.adapter_config(model.name, n_domains, run_seed))


BASE = Method("base", "Base", "the backbone alone", phases=(BASE_PHASE,), backbone_path=True, grows=True, folds=True)
MLORA = Method("mlora", "MLoRA", "Yang et al., 2024", phases=(MLORA_PHASE,), attach=attach_lora,
               final_mode=AdapterMode.DOMAIN, grows=True, backbone_path=True, folds=True)
MOE_MLORA = Method("moe-mlora", "MoE-MLoRA", "the paper (moe-mlora-paper.md)", phases=(MOE_BACKBONE, MOE_EXPERTS, MOE_GATE),
                   attach=attach_lora, final_mode=AdapterMode.MIXTURE, grows=True, backbone_path=True, folds=True)
