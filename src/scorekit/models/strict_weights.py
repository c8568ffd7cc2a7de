"""Strict loading: a checkpoint's tensors must cover the model exactly.

A weight the checkpoint lacks would be left at its random initialisation (or a shape's zeros) and every
score would be wrong without any error; a tensor the checkpoint has but the model never reads usually means
the wrong architecture or a head that is silently dropped. Both are load errors that name the keys.

Our own builders read every tensor through a `StateReader`, then call `check_all_read` with the keys that
may safely stay unread, each with the reason why (`Unread`). The `transformers` fallback gets the same rule
from transformers' own loading report (models/hf_fallback.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from torch import Tensor

from scorekit.errors import ModelLoadError

_SHOWN = 8  # keys named in one error message; the count says how many there are in all


def name_keys(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(repr(k) for k in keys[:_SHOWN])
    return shown + (f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


@dataclass(frozen=True)
class Unread:
    """Checkpoint keys (a regular expression, matched in full) that may stay unread, and why that is safe."""

    pattern: str
    why: str

    def matches(self, key: str) -> bool:
        return re.fullmatch(self.pattern, key) is not None


class StateReader:
    """A state dict that remembers which tensors were read. `what` names the model in error messages;
    `original_names` maps a (renamed) key back to the checkpoint's own name for those messages, and a missing
    key is named with `missing_prefix` (the base-model prefix the checkpoint uses) in front."""

    def __init__(self, state: Mapping[str, Tensor], what: str, original_names: Mapping[str, str] | None = None,
                 missing_prefix: str = ""):
        self._state = state
        self._read: set[str] = set()
        self._what = what
        self._original = original_names or {}
        self._missing_prefix = missing_prefix

    def __contains__(self, key: str) -> bool:
        return key in self._state

    def __getitem__(self, key: str) -> Tensor:
        if key not in self._state:
            raise ModelLoadError(f"{self._what}: the checkpoint is missing weight {self._missing_prefix + key!r}")
        self._read.add(key)
        return self._state[key]

    def unread(self) -> list[str]:
        return sorted(set(self._state) - self._read)

    def check_all_read(self, allowed: Iterable[Unread] = ()) -> None:
        allowed = list(allowed)
        left = [k for k in self.unread() if not any(rule.matches(k) for rule in allowed)]
        if left:
            raise ModelLoadError(
                f"{self._what}: the checkpoint has {len(left)} weight(s) this model does not use: "
                f"{name_keys(self._original.get(k, k) for k in left)}. Refusing to load it: the checkpoint "
                "does not match the architecture its config names."
            )


def check_loading_report(what: str, missing: Iterable[str], unexpected: Iterable[str],
                         mismatched: Iterable = ()) -> None:
    """Refuse what `transformers` would load with missing (randomly initialised), unexpected (dropped) or
    resized weights. Its per-class ignore lists (`_keys_to_ignore_on_load_*`, tied weights) are applied
    before it reports, so what it reports is real."""
    missing, unexpected, mismatched = sorted(missing), sorted(unexpected), [str(m) for m in mismatched]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} weight(s), which would be randomly initialised: {name_keys(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} weight(s) the model does not use: {name_keys(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} weight(s) of the wrong shape: {name_keys(mismatched)}")
    if problems:
        raise ModelLoadError(f"{what}: the checkpoint does not match the model: " + "; ".join(problems))
