"""Multimodal inputs of a request → `Content` before any job is built, so the engine only ever sees decoded images.

Order of checks (cheap first, nothing fetched until all pass): a multimodal input on a text-only model is vLLM's
400 "MultiModalParam is not supported for <Architecture>"; then parts and image counts (media/resolve.py); then
fetching and decoding on the media thread pool, off the event loop.
"""

from __future__ import annotations

from typing import Any, Sequence

from scorekit.errors import ValidationError
from scorekit.media.policy import MediaConfig
from scorekit.media.resolve import is_multimodal, resolve_inputs_async
from scorekit.scoring.pairing import refuse_multimodal


def media_config(state) -> MediaConfig:
    return getattr(state.llm, "media_config", None) or MediaConfig()


def takes_images(state) -> bool:
    return bool(getattr(state.info, "multimodal", False))


def refuse_on_text_model(state, items: Sequence[Any]) -> None:
    refuse_multimodal(items, state.info.architecture, takes_images(state))


def check_mm_processor_kwargs(state, kwargs: dict | None) -> None:
    """vLLM: per-request mm_processor_kwargs need --trust-request-mm-kwargs. `{}` and null change nothing."""
    if not kwargs:
        return
    if not media_config(state).trust_request_mm_kwargs:
        raise ValidationError("Per-request mm_processor_kwargs are disabled by default; start the server with "
                              "--trust-request-mm-kwargs to allow them.", param="mm_processor_kwargs")
    if not takes_images(state):
        raise ValidationError(f"mm_processor_kwargs: {state.info.architecture} takes no multimodal input, so there "
                              "is no processor to pass them to.", param="mm_processor_kwargs")
    # Refused rather than dropped: the model's input builder does not take per-request processor settings yet.
    raise ValidationError(f"mm_processor_kwargs are not supported for {state.info.architecture} yet: its image "
                          "processor runs with the model's own settings.", param="mm_processor_kwargs")


async def resolve_sides(state, sides: Sequence[tuple[str, Any]]) -> list[Any]:
    """Each (field name, side) → the side with its multimodal inputs resolved, same shape (a bare input stays
    bare, a list a list). All images of the request are counted together and fetched in parallel."""
    flat: list[Any] = []
    names: list[str] = []
    for name, side in sides:
        if isinstance(side, list):
            flat.extend(side)
            names.extend(f"{name}[{i}]" for i in range(len(side)))
        else:
            flat.append(side)
            names.append(name)
    refuse_on_text_model(state, flat)
    if not any(is_multimodal(i) for i in flat):
        return [side for _, side in sides]
    resolved = await resolve_inputs_async(flat, media_config(state), offline=False, names=names)
    out, at = [], 0
    for _, side in sides:
        if isinstance(side, list):
            out.append(resolved[at:at + len(side)])
            at += len(side)
        else:
            out.append(resolved[at])
            at += 1
    return out
