"""Transitional: glibc's mmap threshold is a process-wide setting, applied by `scorekit.runtime.apply()` (see
RuntimeSettings.malloc_mmap_threshold for why and what it measured). This module only remains while
engine/runner.py still calls it from `Runner.__init__`; delete it together with that call."""

from __future__ import annotations

from scorekit import runtime


def return_large_blocks_to_os() -> bool:
    """Fix glibc's mmap threshold at the default 1 MiB, as `runtime.apply()` would. False where it does not
    apply: not glibc, or the operator chose a threshold through MALLOC_MMAP_THRESHOLD_."""
    with runtime._lock:
        threshold, _ = runtime._set_mmap_threshold(runtime.RuntimeSettings().malloc_mmap_threshold)
    return threshold is not None
