"""Rule packs: a rule set as YAML or JSON text, to review, version in git and import again.

A pack is a mapping ``{"mode": "pre_auth", "rules": [{"id": ..., "expression": ..., "action":
..., "status": ..., "priority": ..., "description": ..., "author": ...}]}`` (``mode`` optional,
only ``id``, ``expression`` and ``action`` required), or just the list of rules. JSON is read as
YAML (a subset of it). An unknown key or a wrong type is refused with where it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from importlib import resources
from typing import Any, Final, Literal

import msgspec

from fraudstream.rules._errors import RuleError
from fraudstream.rules._rules import Rule

__all__ = ["STARTER_PACKS", "Pack", "PackFormat", "read_pack", "starter_pack", "write_pack"]

PackFormat = Literal["yaml", "json"]


class _Doc(msgspec.Struct, forbid_unknown_fields=True):
    rules: list[dict[str, Any]]
    mode: str | None = None


#: The starter pack shipped for each mode (``fraudstream/rules/packs/``; see docs/rules.md).
STARTER_PACKS: Final = {
    "pre_auth": "paysim_starter.yaml",
    "post_tx": "paysim_starter.yaml",
    "card": "card_starter.yaml",
}

#: The keys a rule of a pack may have: :class:`Rule`'s fields.
_KEYS: Final = tuple(f.name for f in fields(Rule))


@dataclass(frozen=True, slots=True)
class Pack:
    """A pack's rules, in the order written, and its mode when it names one."""

    rules: tuple[Rule, ...]
    mode: str | None = None


def read_pack(text: str, source: str = "rule pack") -> Pack:
    """The rules of a YAML or JSON pack; :class:`RuleError` naming ``source`` and the place."""
    try:
        raw: Any = msgspec.yaml.decode(text)
    except msgspec.DecodeError as exc:
        reason = " ".join(str(exc).split()).replace('in "<unicode string>", ', "at ")
        raise RuleError(f"{source}: not YAML or JSON: {reason}") from None
    if isinstance(raw, list):
        raw = {"rules": raw}
    try:
        doc = msgspec.convert(raw, _Doc)
    except msgspec.ValidationError as exc:
        raise RuleError(f"{source}: {exc}") from None
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, entry in enumerate(doc.rules):
        where = f"{source}: rules[{i}]"
        if unknown := sorted(entry.keys() - set(_KEYS)):
            raise RuleError(f"{where}: unknown key {unknown[0]!r}; a rule has {', '.join(_KEYS)}")
        try:
            rule = msgspec.convert(entry, Rule)
        except msgspec.ValidationError as exc:
            raise RuleError(f"{where}: {exc}") from None
        if rule.id in seen:
            raise RuleError(f"{where}: rule id {rule.id!r} is used twice")
        seen.add(rule.id)
        rules.append(rule)
    return Pack(tuple(rules), doc.mode)


def write_pack(rules: Iterable[Rule], *, mode: str | None, fmt: PackFormat = "yaml") -> str:
    """The pack text of ``rules`` (in that order); :func:`read_pack` reads it back equal."""
    doc: dict[str, Any] = {} if mode is None else {"mode": mode}
    doc["rules"] = [asdict(r) for r in rules]
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    return msgspec.yaml.encode(doc).decode()


def starter_pack(mode: str) -> Pack:
    """The starter pack shipped for ``mode`` (PaySim's two modes share one, card has its own)."""
    name = STARTER_PACKS.get(mode)
    if name is None:
        raise RuleError(f"no starter pack for mode {mode!r}; modes: {', '.join(STARTER_PACKS)}")
    text = resources.files("fraudstream.rules").joinpath("packs", name).read_text("utf-8")
    return read_pack(text, source=f"starter pack {name}")
