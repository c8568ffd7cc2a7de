"""Multimodal inputs of a request → `Content` before any job is built, so the engine only ever sees decoded images.

Order of checks (cheap first, nothing fetched until all pass): mm_processor_kwargs (the trust flag, then the keys
the model's processor takes); a multimodal input on a text-only model is vLLM's 400 "MultiModalParam is not
supported for <Architecture>"; then parts and image counts (media/resolve.py); then fetching and decoding on the
media thread pool, off the event loop.
"""

from __future__ import annotations

from typing import Any, Sequence

from scorekit.errors import ValidationError
from scorekit.media.content import ProcessorOptions, with_options
from scorekit.media.policy import MediaConfig
from scorekit.media.resolve import is_multimodal, resolve_inputs_async
from scorekit.scoring.pairing import refuse_multimodal
from scorekit.scoring.vl_inputs import processor_options


def media_config(state) -> MediaConfig:
    return getattr(state.llm, "media_config", None) or MediaConfig()


def takes_images(state) -> bool:
    return bool(getattr(state.info, "multimodal", False))


def refuse_on_text_model(state, items: Sequence[Any]) -> None:
    refuse_multimodal(items, state.info.architecture, takes_images(state))


def check_mm_processor_kwargs(state, kwargs: dict | None) -> ProcessorOptions:
    """vLLM: per-request mm_processor_kwargs need --trust-request-mm-kwargs. `{}` and null change nothing. With the
    flag, they are checked against the model's processor (an unknown key or a bad value is a 400 naming it) and
    come back, over the model's own (`--mm-processor-kwargs`), as the options every image is processed with."""
    if kwargs and not media_config(state).trust_request_mm_kwargs:
        raise ValidationError("Per-request mm_processor_kwargs are disabled by default; start the server with "
                              "--trust-request-mm-kwargs to allow them.", param="mm_processor_kwargs")
    if kwargs and not takes_images(state):
        raise ValidationError(f"mm_processor_kwargs: {state.info.architecture} takes no multimodal input, so there "
                              "is no processor to pass them to.", param="mm_processor_kwargs")
    if not takes_images(state):
        return ()
    return processor_options(state.llm.loaded.media_inputs, state.info.architecture,
                             media_config(state).mm_processor_kwargs, kwargs)


async def resolve_sides(state, sides: Sequence[tuple[str, Any]], mm_processor_kwargs: dict | None = None) -> list[Any]:
    """Each (field name, side) → the side with its multimodal inputs resolved, same shape (a bare input stays
    bare, a list a list). All images of the request are counted together and fetched in parallel; each carries
    the request's processor options (`check_mm_processor_kwargs`, checked before anything is fetched)."""
    options = check_mm_processor_kwargs(state, mm_processor_kwargs)
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
    resolved = with_options(await resolve_inputs_async(flat, media_config(state), offline=False, names=names),
                            options)
    out, at = [], 0
    for _, side in sides:
        if isinstance(side, list):
            out.append(resolved[at:at + len(side)])
            at += len(side)
        else:
            out.append(resolved[at])
            at += 1
    return out
