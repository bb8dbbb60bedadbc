"""What a multi-domain method is, as data: its parts, its phases, and what it offers at serving time.

A method is one file that defines a `Method` (and, where it has any, the dataclass of its own settings) and one
line in moe_mlora.methods.registry. Its `attach`
plugs its parts (moe_mlora.layers.domain_part) into a freshly built backbone; the one training loop then
runs its `phases`; the CLI, sweeps, records and report find it by name in the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from moe_mlora.adapters import AdapterMode
from moe_mlora.training.phase import Phase, PhaseName, Trains

# attach(model, n_domains, run_seed, approach): plugs the method's parts into `model`. `approach` is the
# run's ApproachConfig (LoRA methods read their rank and gate settings from it); parts draw their
# initialisation from a seed derived from the run's (moe_mlora.methods.blocks.seeded), never from the
# global random stream.
Attach = Callable[[Any, int, int, Any], None]

# The phase of every single-phase method: everything trains, on all rows, through the method's own forward.
# Its seed key is Base's, so every such method sees Base's batch order and dropout stream: paired arms.
JOINT_PHASE = Phase(PhaseName.JOINT, Trains.ALL, None, seed_key="backbone")


# How the embeddings a method's parts own (domain embeddings of gates, a personal prior's tables) start: torch's
# N(0, 1), as the shipped records ran, or like the field embeddings (N(0, model_config.embedding_init_std), 100x
# smaller by default; Scenario-Wise Rec starts both at N(0, 1e-4)).
PART_EMBEDDINGS = ("torch", "like-fields")


def start_embeddings_like_fields(model, run_seed: int) -> None:
    """Redraw every embedding table of the method's parts from N(0, the fields' std), from a seed of the run's
    (the global random stream is left as it was)."""
    from moe_mlora.layers.domain_part import domain_parts
    from moe_mlora.training.config import derive_seed

    generator = torch.Generator().manual_seed(derive_seed(run_seed, "part-embeddings"))
    with torch.no_grad():
        for _, part in domain_parts(model):
            for module in part.modules():
                if isinstance(module, nn.Embedding):
                    module.weight.copy_(torch.randn(module.weight.shape, generator=generator)
                                        * model.config.embedding_init_std)


@dataclass(frozen=True)
class Method:
    name: str  # as given on the command line and stored in run records
    title: str  # as printed in tables
    reference: str  # the paper (and the reference code it is compared with)
    phases: tuple[Phase, ...] = (JOINT_PHASE,)
    attach: Attach | None = None  # None: the bare backbone (Base)
    final_mode: AdapterMode | None = None  # LoRA methods: the adapters' path at inference
    grows: bool = False  # add-domain can give a trained run one more domain (LoRA adapters: their own rule;
    # other parts: DomainPart.grow_into, per-domain blocks start at the average domain and only they train)
    backbone_path: bool = False  # rows of an unknown domain can be scored by the backbone alone
    folds: bool = False  # each domain folds into one plain model (export --domain, merged inference)
    # The method's own settings: a frozen dataclass of moe_mlora.settings.setting fields (as PEFT's method
    # configs). Each becomes a command-line option --<method>-<setting> of `train`, a key under the config
    # file's approach.method_settings, and part of the run's key where it differs from its default.
    settings: type | None = None
    # Settings kept as fields of the run's approach section (they predate `settings` and every run's key hashes them:
    # MLoRA's and MoE-MLoRA's): the dataclass says which fields are the method's and checks their values.
    flat_settings: type | None = None

    def settings_of(self, approach) -> Any:
        """This method's typed settings for a run (its defaults where the run names none); None without any."""
        if self.settings is None:
            return None
        return self.settings(**(getattr(approach, "method_settings", None) or {}))

    def flat_settings_of(self, approach) -> Any:
        """This method's settings kept on the approach section, as its typed dataclass (None without any)."""
        if self.flat_settings is None:
            return None
        from dataclasses import fields

        return self.flat_settings(**{spec.name: getattr(approach, spec.name) for spec in fields(self.flat_settings)})

    def plug_into(self, model, n_domains: int, run_seed: int, approach) -> None:
        """Attach the method's parts to `model`, on the device its backbone lives on (attach builds them on
        the CPU); nothing for the bare backbone."""
        if self.attach is None:
            return
        device = next(model.parameters()).device
        self.attach(model, n_domains, run_seed, approach)
        if getattr(approach, "part_embeddings", PART_EMBEDDINGS[0]) == "like-fields":
            start_embeddings_like_fields(model, run_seed)
        model.to(device)

    @property
    def adapts(self) -> bool:
        """Whether the method's parts are LoRA adapters (MLoRA, MoE-MLoRA)."""
        return self.final_mode is not None
