"""Score templates (SPEC §8): Jinja that turns one (query, document) pair into a cross-encoder prompt.

Rendering follows Hugging Face `apply_chat_template` semantics (sandboxed, trim_blocks, lstrip_blocks,
`raise_exception`, special-token variables) so templates written for HF work unchanged. The tokenizer's own
chat template is never used implicitly: most rerankers inherit one that has nothing to do with scoring.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from scorekit.errors import ValidationError

RESERVED_KWARGS = ("chat_template", "tools", "tokenize")
# Variables a template may use without the request naming them (HF passes these to every template).
_STANDARD_VARIABLES = ("add_generation_prompt", "bos_token", "eos_token", "pad_token", "unk_token", "sep_token", "cls_token")


def shipped_templates() -> dict[str, str]:
    """Name → text of the templates packaged with scorekit (file name without `.jinja`)."""
    folder = resources.files("scorekit.scoring") / "templates"
    return {p.name[: -len(".jinja")]: p.read_text(encoding="utf-8") for p in folder.iterdir() if p.name.endswith(".jinja")}


def load_template(spec: str) -> str:
    """A template given as a shipped name ("qwen3_reranker"), a file path, or literal Jinja text."""
    shipped = shipped_templates()
    name = spec[: -len(".jinja")] if spec.endswith(".jinja") else spec
    if Path(spec).is_file():
        return Path(spec).read_text(encoding="utf-8")
    if Path(name).name in shipped and ("{" not in spec):
        return shipped[Path(name).name]
    if "{{" in spec or "{%" in spec:
        return spec
    raise ValidationError(
        f"chat template {spec!r} is neither a file, a shipped template ({', '.join(sorted(shipped))}) nor Jinja text"
    )


def _raise_exception(message: str):
    raise jinja2.exceptions.TemplateError(message)


@functools.lru_cache(maxsize=32)
def _compile(source: str) -> tuple[jinja2.Template, frozenset[str]]:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = _raise_exception
    referenced = frozenset(meta.find_undeclared_variables(env.parse(source)))
    return env.from_string(source), referenced


def check_template_kwargs(kwargs: dict[str, Any] | None) -> None:
    for key in RESERVED_KWARGS:
        if kwargs and key in kwargs:
            raise ValidationError(f"chat_template_kwargs must not contain the reserved key {key!r}", param="chat_template_kwargs")


def render_score_prompt(
    source: str,
    query: str,
    document: str,
    special_tokens: dict[str, str | None],
    template_kwargs: dict[str, Any] | None = None,
) -> str:
    """Render one pair. Only kwargs the template references are passed (so `instruction` is harmless elsewhere)."""
    template, referenced = _compile(source)
    variables: dict[str, Any] = {"add_generation_prompt": False, "tools": None, **special_tokens}
    for key, value in (template_kwargs or {}).items():
        if key in referenced:
            variables[key] = value
    messages = [{"role": "query", "content": query}, {"role": "document", "content": document}]
    try:
        return template.render(messages=messages, **variables)
    except jinja2.exceptions.TemplateError as exc:
        raise ValidationError(str(exc)) from exc
