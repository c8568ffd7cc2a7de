"""Batch planning: sort by length and cut batches where that makes the whole run cheapest, within budgets.

FIFO batches of real sentences were ~65% padding on our machines; sorted batches ~6%, and 2.25x faster.
But padding is not the only cost: every forward also pays a fixed price (Python and kernel launches in every
layer, reading every weight once), which for short rows on a small model outweighs the padding. A forward is
therefore priced `overhead_tokens + rows × longest` token-units, and the cut points are chosen to minimise the
total, so short sentences of different lengths share one forward while long documents stay finely sorted.
A model that computes real tokens only (`packed`: our encoder drops padding before its first layer) is priced
`overhead_tokens + Σ lengths` instead: padding is free, and the cheapest plan is the fewest forwards.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

# The fixed cost of one forward, in tokens of compute. Measured on the 2-core CPU, one torch thread: alone, a
# MiniLM forward costs ~5 ms + 0.17 ms per token (≈ 32 tokens) and a SmolLM2-135M one ~94 ms + 2.2 ms per
# token (≈ 43): small-row matmuls run at a third of their large-batch speed, whatever the model's size. Under
# serving load (threads, GIL, caches shared with the HTTP side) the server spent least model CPU per request
# with 64: 7.2 ms against 8.1 with 32 and 9.7 with 8 at concurrency 8 (bench/serve_load.py texts).
DEFAULT_OVERHEAD_TOKENS = 64


def plan_batches(lengths: Sequence[int], max_batch_tokens: int, max_batch_size: int,
                 overhead_tokens: float = DEFAULT_OVERHEAD_TOKENS, row_bytes: Callable[[int], int] | None = None,
                 max_batch_bytes: int | None = None, packed: bool = False) -> list[list[int]]:
    """Indices grouped into batches of at most `max_batch_size` rows whose padded size (rows × longest row)
    stays within `max_batch_tokens`, cut so that the summed cost `overhead_tokens + rows × longest` (`packed`:
    `overhead_tokens + Σ lengths`) of all batches is least. With `row_bytes` (estimated peak activation bytes
    of one row of a given padded length), each batch's rows × row_bytes(longest) also stays within
    `max_batch_bytes`: memory stays bounded whatever the budget.

    Longest first: the first batch has the peak memory, so an out-of-memory shows up at once, not at the end.
    A single sequence longer than the budget still gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    if len(order) <= 1:
        return [order] if order else []
    caps = _row_caps([lengths[i] for i in order], max_batch_tokens, max_batch_size, row_bytes, max_batch_bytes)
    cuts = _cheapest_cuts([lengths[i] for i in order], caps, overhead_tokens, packed)
    return [order[a:b] for a, b in zip(cuts, cuts[1:])]


def _row_caps(sorted_lengths: list[int], max_batch_tokens: int, max_batch_size: int,
              row_bytes: Callable[[int], int] | None, max_batch_bytes: int | None) -> list[int]:
    """The most rows a batch may hold when the sequence at each position is its longest (at least one)."""
    caps: dict[int, int] = {}
    for n in set(sorted_lengths):
        cap = min(max_batch_size, max_batch_tokens // max(n, 1))
        if row_bytes is not None and max_batch_bytes is not None:
            cap = min(cap, max_batch_bytes // max(row_bytes(n), 1))
        caps[n] = max(1, cap)
    return [caps[n] for n in sorted_lengths]


def _cheapest_cuts(sorted_lengths: list[int], caps: list[int], overhead: float, packed: bool) -> list[int]:
    """Batch boundaries in the longest-first order that minimise Σ (overhead + rows × longest), or
    Σ (overhead + Σ lengths) when `packed`.

    An exact dynamic programme: with the rows sorted, some cheapest plan cuts the order into contiguous runs,
    and a run starting at position i costs overhead + rows × length[i] (packed: the run's own lengths). best[j]
    is the cheapest way to run the first j rows; each start i relaxes every end it can reach within its row
    cap, one numpy slice at a time.
    """
    n = len(sorted_lengths)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    start = np.zeros(n + 1, dtype=np.int64)
    ends_at = np.cumsum([0] + list(sorted_lengths), dtype=np.float64)  # rows [i, j) hold ends_at[j] - ends_at[i]
    for i in range(n):
        reach = min(caps[i], n - i)
        if packed:
            candidate = best[i] + overhead + (ends_at[i + 1:i + 1 + reach] - ends_at[i])
        else:
            candidate = best[i] + overhead + sorted_lengths[i] * np.arange(1, reach + 1, dtype=np.float64)
        ends = best[i + 1:i + 1 + reach]  # a view: improvements are written into `best`
        better = candidate < ends
        ends[better] = candidate[better]
        start[i + 1:i + 1 + reach][better] = i
    cuts = [n]
    while cuts[-1] > 0:
        cuts.append(int(start[cuts[-1]]))
    return cuts[::-1]


# A forward smaller than this is not split to occupy another model thread: below it the per-forward cost
# (DEFAULT_OVERHEAD_TOKENS and small-row matmuls) eats what the second core brings (single-text serving
# requests measured no faster split in two).
MIN_SPLIT_TOKENS = 1024


def spread(batches: list[list[int]], lengths: Sequence[int], ways: int,
           min_tokens: int = MIN_SPLIT_TOKENS) -> list[list[int]]:
    """Split the largest batches in two until there are `ways` of them, so that a group that fits in one
    forward still keeps every model thread busy: each thread runs on one core, and one forward of a big group
    (50 reranker prompts after a shared prefix) would otherwise leave the other core idle. A batch is split at
    its token midpoint (rows stay in length order, so padding stays small) and only while both halves keep at
    least `min_tokens` tokens."""
    batches = [list(b) for b in batches]
    while len(batches) < ways:
        largest = max(batches, key=lambda b: sum(lengths[i] for i in b), default=None)
        if largest is None or len(largest) < 2:
            break
        total, running, cut = sum(lengths[i] for i in largest), 0, 0
        while cut < len(largest) - 1 and running + lengths[largest[cut]] <= total / 2:
            running += lengths[largest[cut]]
            cut += 1
        cut = max(cut, 1)
        left, right = largest[:cut], largest[cut:]
        if min(sum(lengths[i] for i in left), sum(lengths[i] for i in right)) < min_tokens:
            break
        at = batches.index(largest)
        batches[at:at + 1] = [left, right]
    return batches


def padding_fraction(lengths: Sequence[int], batches: list[list[int]]) -> float:
    real = sum(lengths)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return 0.0 if padded == 0 else 1 - real / padded
