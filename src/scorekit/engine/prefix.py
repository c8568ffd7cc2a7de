"""Find prompts that start with the same tokens, so a decoder computes that shared prefix only once.

In a decoder reranker every prompt of a request is template + query + document: sorting the token
sequences puts prompts with a common start next to each other, and each run of neighbours whose common
prefix is long enough becomes one group. Works across requests too (two requests with the same query).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass
class PrefixGroup:
    prefix_len: int  # tokens shared by every member (always leaves ≥ 1 token of each member to run)
    members: list[int]


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def group_by_prefix(sequences: Sequence[Sequence[int]], min_prefix: int) -> tuple[list[PrefixGroup], list[int]]:
    """(groups of ≥ 2 members sharing ≥ min_prefix tokens, indices of the rest)."""
    order = sorted(range(len(sequences)), key=lambda i: tuple(sequences[i]))
    groups: list[PrefixGroup] = []
    loners: list[int] = []
    current: PrefixGroup | None = None
    for i in order:
        if current is not None:
            shared = common_prefix_len(sequences[current.members[0]], sequences[i])
            shared = min(shared, len(sequences[i]) - 1)
            if shared >= min_prefix and min(current.prefix_len, shared) >= min_prefix:
                current.prefix_len = min(current.prefix_len, shared)
                current.members.append(i)
                continue
            _close(current, groups, loners)
        current = PrefixGroup(len(sequences[i]) - 1, [i])
    if current is not None:
        _close(current, groups, loners)
    return groups, loners


def _close(group: PrefixGroup, groups: list[PrefixGroup], loners: list[int]) -> None:
    if len(group.members) >= 2:
        groups.append(group)
    else:
        loners.extend(group.members)
