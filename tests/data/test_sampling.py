"""Length-grouped training order and length-sorted evaluation: same examples, less padding, fixed by the seed."""

from __future__ import annotations

import random

import pytest

from xrobust.data.sampling import EpochShuffleSampler, LengthGroupedSampler, LengthSortedSampler


def padded_tokens(order: list[int], lengths: list[int], batch_size: int) -> int:
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


@pytest.fixture
def lengths() -> list[int]:
    rng = random.Random(0)
    return [rng.randint(8, 128) for _ in range(1000)]


def test_grouped_order_is_a_permutation_fixed_by_seed_and_epoch(lengths):
    sampler = LengthGroupedSampler(lengths, batch_size=32, seed=1)
    first = list(sampler)
    assert sorted(first) == list(range(len(lengths)))
    assert list(LengthGroupedSampler(lengths, batch_size=32, seed=1)) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert list(LengthGroupedSampler(lengths, batch_size=32, seed=2)) != first


def test_grouping_pads_less_than_shuffling(lengths):
    grouped = list(LengthGroupedSampler(lengths, batch_size=32, seed=1))
    shuffled = list(EpochShuffleSampler(len(lengths), seed=1))
    assert padded_tokens(grouped, lengths, 32) < 0.8 * padded_tokens(shuffled, lengths, 32)


def test_batch_boundaries_survive_the_batch_shuffle(lengths):
    """Each sampler batch is sorted longest-first: a block straddling two batches (a partial batch in the
    middle) would show up as a rise in length."""
    order = list(LengthGroupedSampler(lengths, batch_size=32, seed=1, mega_batches=4))
    blocks = [order[i : i + 32] for i in range(0, len(order), 32)]
    assert len(blocks[-1]) == len(lengths) % 32
    for block in blocks:
        block_lengths = [lengths[i] for i in block]
        assert block_lengths == sorted(block_lengths, reverse=True)


def test_grouping_handles_tiny_and_empty_sets():
    assert list(LengthGroupedSampler([], batch_size=4, seed=1)) == []
    assert sorted(LengthGroupedSampler([5, 3], batch_size=4, seed=1)) == [0, 1]


def test_sorted_evaluation_is_longest_first_and_stable():
    assert list(LengthSortedSampler([3, 5, 3, 7, 1])) == [3, 1, 0, 2, 4]


def same_batch_pairs(order: list[int], batch_size: int) -> set[tuple[int, int]]:
    batches = [sorted(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]
    return {(a, b) for batch in batches for i, a in enumerate(batch) for b in batch[i + 1 :]}


def test_smaller_length_groups_mix_batches_anew_each_epoch(lengths):
    """When one group holds the whole training set, every epoch sorts all of it by length and the same examples
    share batches epoch after epoch; smaller groups (data.length_group_batches) mix them again, for a little
    more padding."""

    def repeated_and_padding(groups: int) -> tuple[float, int]:
        sampler = LengthGroupedSampler(lengths, batch_size=32, seed=1, mega_batches=groups)
        first = list(sampler)
        sampler.set_epoch(1)
        before, after = same_batch_pairs(first, 32), same_batch_pairs(list(sampler), 32)
        return len(before & after) / len(before), padded_tokens(first, lengths, 32)

    whole, whole_padding = repeated_and_padding(50)  # 50 x 32 > 1000 examples: one group
    small, small_padding = repeated_and_padding(4)
    assert whole > 0.3 and small < whole / 3
    shuffled = padded_tokens(list(EpochShuffleSampler(len(lengths), seed=1)), lengths, 32)
    assert whole_padding < small_padding < shuffled


def test_shuffled_order_shards_itself_so_lightning_keeps_it():
    """A DistributedSampler of its own (Lightning wraps any other sampler in one that reshuffles it), each rank
    taking every other index of the one-process order, padded so both take as many."""
    from torch.utils.data import DistributedSampler

    ranks = [EpochShuffleSampler(7, seed=1, num_replicas=2, rank=r) for r in (0, 1)]
    orders = [list(s) for s in ranks]
    alone = list(EpochShuffleSampler(7, seed=1))
    assert all(isinstance(s, DistributedSampler) for s in ranks)
    assert orders == [alone[0::2], [*alone[1::2], alone[0]]] and [len(s) for s in ranks] == [4, 4]


def loader(num_examples: int = 20, ranks: int = 1):
    from xrobust.data.resumable import ResumableLoader

    return ResumableLoader(list(range(num_examples)), batch_size=3, sampler=EpochShuffleSampler(num_examples, 1, ranks))


def test_a_loader_resumed_mid_epoch_takes_the_batches_an_uninterrupted_one_would():
    import torch

    uninterrupted = loader()
    uninterrupted.sampler.set_epoch(1)
    expected = [batch.tolist() for batch in uninterrupted]

    stopped = loader()
    stopped.sampler.set_epoch(1)
    taken = [batch.tolist() for _, batch in zip(range(4), stopped, strict=False)]
    state = stopped.state_dict()
    resumed = loader()
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(1)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    rest = [batch.tolist() for batch in resumed]
    assert taken + rest == expected and resumed.resume == {"exact": True, "reason": None}
    assert torch.equal(torch.get_rng_state(), before)  # making the iterator drew nothing from dropout's generator
    resumed.sampler.set_epoch(2)
    assert len([batch.tolist() for batch in resumed]) == len(expected)  # the next epoch starts at its beginning


def test_a_resume_on_another_number_of_ranks_says_it_is_not_exact(caplog):
    stopped = loader()
    next(iter(stopped))
    resumed = loader(ranks=2)
    resumed.load_state_dict(stopped.state_dict())
    list(resumed)
    assert resumed.resume == {"exact": False, "reason": "the training order changed since the checkpoint: ranks 1 -> 2"}
    assert ["resume is not exact" in record.message for record in caplog.records] == [True]


def test_a_checkpoint_without_a_loader_position_resumes_where_lightning_counts_and_says_so():
    """A checkpoint from before loaders had a state: the epoch's order is still (seed, epoch), so the batches
    Lightning counts as done are skipped, but nothing vouches for the order the run that wrote it used."""
    uninterrupted = [batch.tolist() for batch in loader()]
    resumed = loader()
    resumed.lightning_batches = lambda: 2
    assert [batch.tolist() for batch in resumed] == uninterrupted[2:]
    assert resumed.resume["exact"] is False and "holds no data-loader position" in resumed.resume["reason"]
