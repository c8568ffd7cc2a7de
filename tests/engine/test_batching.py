import itertools
import random

import pytest

from scorekit.engine.batching import padding_fraction, plan_batches


def _cost(lengths, batches, overhead):
    return sum(overhead + len(b) * max(lengths[i] for i in b) for b in batches)


def test_batches_respect_budget_and_size():
    lengths = [5, 100, 7, 98, 6, 50, 51, 99, 300]
    batches = plan_batches(lengths, max_batch_tokens=250, max_batch_size=2)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= 2
        assert longest * len(batch) <= 250 or len(batch) == 1  # one over-budget sequence still runs alone
    assert padding_fraction(lengths, batches) < 0.1


def test_short_sentences_of_different_lengths_share_one_forward():
    # Four single-text requests: a forward's fixed cost (32 token-units) outweighs their padding, so one batch
    # (a flat 20% padding cap would have run three or four forwards).
    assert [sorted(b) for b in plan_batches([12, 20, 9, 16], 16384, 256, overhead_tokens=32)] == [[0, 1, 2, 3]]


def test_long_documents_stay_finely_sorted():
    rng = random.Random(0)
    lengths = [rng.randint(30, 512) for _ in range(400)]
    batches = plan_batches(lengths, 16384, 256)  # the default cost of a forward
    assert padding_fraction(lengths, batches) < 0.03
    assert all(len(b) * max(lengths[i] for i in b) <= 16384 for b in batches)
    # a short document is never padded to a long one's length
    assert all(max(lengths[i] for i in b) - min(lengths[i] for i in b) < 64 for b in batches)


def test_without_overhead_batches_hold_one_length_each():
    lengths = [7, 9, 7, 12, 9, 9]
    batches = plan_batches(lengths, 16384, 256, overhead_tokens=0)
    assert padding_fraction(lengths, batches) == 0
    assert len(batches) == 3


@pytest.mark.parametrize("seed", range(20))
def test_plan_is_the_cheapest_split_of_the_sorted_order(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 80) for _ in range(rng.randint(2, 9))]
    overhead, budget, size = rng.choice([0, 8, 32, 100]), rng.choice([120, 400, 10_000]), rng.choice([2, 3, 256])
    batches = plan_batches(lengths, budget, size, overhead_tokens=overhead)
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])

    def allowed(b):
        return len(b) == 1 or (len(b) <= size and len(b) * max(lengths[i] for i in b) <= budget)

    best = min(
        _cost(lengths, split, overhead)
        for cuts in itertools.product([False, True], repeat=len(order) - 1)
        for split in [_split(order, cuts)]
        if all(allowed(b) for b in split)
    )
    assert all(allowed(b) for b in batches)
    assert _cost(lengths, batches, overhead) == best


def _split(order, cuts):
    out, current = [], [order[0]]
    for i, cut in zip(order[1:], cuts):
        if cut:
            out.append(current)
            current = []
        current.append(i)
    return out + [current]


def test_sorting_cuts_padding_against_arrival_order():
    lengths = [10, 200, 12, 190, 11, 210] * 10
    fifo = [list(range(i, i + 6)) for i in range(0, len(lengths), 6)]
    assert padding_fraction(lengths, plan_batches(lengths, 10_000, 64)) < padding_fraction(lengths, fifo) / 5


def test_byte_cap_bounds_every_batch_whatever_the_token_budget():
    lengths = [512] * 100 + [64] * 100

    def row_bytes(n):  # quadratic in length, like attention
        return n * n

    batches = plan_batches(lengths, max_batch_tokens=10**9, max_batch_size=10**6,
                           row_bytes=row_bytes, max_batch_bytes=10 * 512 * 512)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) * row_bytes(max(lengths[i] for i in batch)) <= 10 * 512 * 512
    assert max(len(b) for b in batches) > 10  # short rows still batch widely: the cap follows the length


def test_spread_splits_one_big_batch_for_every_model_thread_but_not_small_ones():
    from scorekit.engine.batching import spread

    lengths = [120 - i for i in range(50)]  # 50 reranker suffixes, longest first, one forward's worth
    halves = spread([list(range(50))], lengths, ways=2)
    assert len(halves) == 2 and sorted(halves[0] + halves[1]) == list(range(50))
    assert halves[0] == list(range(len(halves[0])))  # contiguous in length order: padding stays small
    left, right = (sum(lengths[i] for i in h) for h in halves)
    assert abs(left - right) <= 2 * max(lengths)  # split at the token midpoint
    assert spread([[0, 1, 2]], [30, 28, 25], ways=2) == [[0, 1, 2]]  # a single-text-sized forward stays whole
    assert spread([[0], [1]], [2000, 2000], ways=2) == [[0], [1]]  # already one per thread
    assert len(spread([list(range(50))], lengths, ways=4)) == 4
