"""scorekit on Ray (`pip install "scorekit[ray]"`): Ray Serve replicas for the HTTP server, Ray Data actor pools
for offline scoring. docs/ray.md is the user-facing page.

The names load on first use (PEP 562), so `scorekit.ray.cli` — imported by `scorekit`'s own parser to add the
--ray-* flags — works without Ray installed."""

from __future__ import annotations

_NAMES = {"build_app": "scorekit.ray.serve", "score_dataset": "scorekit.ray.data", "embed_dataset": "scorekit.ray.data"}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module 'scorekit.ray' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_NAMES[name]), name)
