import torch

from helpers import toy_parts
from moe_mlora.training.samplers import epoch_batches, group_batches


def test_by_domain_batches_hold_one_domain_and_cover_every_row():
    _, train, _, _ = toy_parts()
    batches = list(epoch_batches(train, 100, "by-domain", torch.Generator().manual_seed(0)))
    assert all(len(torch.unique(b.domains)) == 1 for b in batches)
    assert sum(len(b) for b in batches) == len(train)
    assert sorted(torch.cat([b.labels for b in batches]).tolist()) == sorted(train.labels.tolist())


def test_shuffled_batches_mix_domains_and_cover_every_row_once():
    _, train, _, _ = toy_parts()
    batches = list(epoch_batches(train, 100, "shuffled", torch.Generator().manual_seed(0)))
    assert all(len(b) == 100 for b in batches[:-1]) and sum(len(b) for b in batches) == len(train)
    assert any(len(torch.unique(b.domains)) > 1 for b in batches)
    codes = torch.cat([b.codes for b in batches])
    assert sorted(map(tuple, codes.tolist())) == sorted(map(tuple, train.codes.tolist()))


def test_a_groups_batches_do_not_depend_on_which_other_groups_are_active():
    _, train, _, _ = toy_parts()
    groups = train.domains
    everyone = list(group_batches(train, groups, torch.tensor([True, True, True]), 50, torch.Generator().manual_seed(3)))
    alone = list(group_batches(train, groups, torch.tensor([False, True, False]), 50, torch.Generator().manual_seed(3)))
    mine = [b.select(torch.nonzero(b.domains == 1).squeeze(1)) for b in everyone]
    mine = [b for b in mine if len(b)]
    assert len(mine) == len(alone)
    for ours, theirs in zip(mine, alone):
        assert torch.equal(ours.codes, theirs.codes)
