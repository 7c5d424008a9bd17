"""The fields a rule may name, with their types: the transaction's, the features of the bundle's
mode, and the model's ``score``.

A :class:`Schema` is built from a mode name (``pre_auth``, ``post_tx`` or ``card``) and rules are
validated against it when they are saved. A field is read from the frame column
:attr:`Field.column` (aliases such as ``nameDest`` and ``counterparty`` read the same column).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from fraudstream.features import CARD_FEATURES, feature_names
from fraudstream.rules._ast import Type
from fraudstream.rules._errors import RuleError
from fraudstream.schema import KINDS

__all__ = ["MODES", "Field", "Schema"]

Source = Literal["transaction", "feature", "model"]

#: The modes a schema can be built for: PaySim's two and the card format.
MODES: Final = ("pre_auth", "post_tx", "card")

#: Features that are 0/1 flags: rules read them as conditions (``drains_balance``, ``not ...``).
_FLAG_FEATURES: Final = frozenset(
    {
        "drains_balance",
        "new_counterparty_for_account",
        "TX_DURING_WEEKEND",
        "TX_DURING_NIGHT",
        "new_terminal_for_customer",
    }
)

_BALANCES_AFTER: Final = frozenset({"newbalanceOrig", "newbalanceDest"})
_BALANCES: Final = _BALANCES_AFTER | {"oldbalanceOrg", "oldbalanceDest"}


@dataclass(frozen=True, slots=True)
class Field:
    """A name a rule may use. ``values`` lists a string field's only values (``type``)."""

    name: str
    column: str
    type: Type
    source: Source
    doc: str
    values: tuple[str, ...] = ()


def _tx_fields(mode: str) -> list[Field]:
    tx: Source = "transaction"
    fields = [
        Field("type", "type", "string", tx, "transaction kind", tuple(KINDS)),
        Field("amount", "amount", "number", tx, "amount of the transaction"),
        Field("account", "account", "string", tx, "paying account (PaySim nameOrig)"),
        Field("nameOrig", "account", "string", tx, "alias of account"),
        Field("counterparty", "counterparty", "string", tx, "payee (PaySim nameDest)"),
        Field("nameDest", "counterparty", "string", tx, "alias of counterparty"),
        Field("hour", "hour", "number", tx, "hour of the event time, 0-23 (UTC)"),
    ]
    if mode == "card":
        fields += [
            Field("customer", "account", "string", tx, "alias of account (the card)"),
            Field("terminal", "counterparty", "string", tx, "alias of counterparty (merchant)"),
        ]
        return fields
    fields += [
        Field("oldbalanceOrg", "oldbalanceOrg", "number", tx, "payer's balance before"),
        Field("oldbalanceDest", "oldbalanceDest", "number", tx, "payee's balance before"),
    ]
    if mode == "post_tx":
        fields += [
            Field("newbalanceOrig", "newbalanceOrig", "number", tx, "payer's balance after"),
            Field("newbalanceDest", "newbalanceDest", "number", tx, "payee's balance after"),
        ]
    return fields


def _is_flag(name: str) -> bool:
    return name in _FLAG_FEATURES or name.startswith("kind_") or name.endswith("_missing")


class Schema:
    """The field catalogue of one mode: name → :class:`Field`.

    ``feature_names`` defaults to the mode's (``fraudstream.features``); a detector passes its
    bundle's. A feature named like a transaction field (``amount``) is that field.
    """

    __slots__ = ("_fields", "mode")

    def __init__(self, mode: str, fields: Iterable[Field]) -> None:
        self.mode = mode
        self._fields: dict[str, Field] = {}
        for f in fields:
            self._fields.setdefault(f.name, f)

    @classmethod
    def for_mode(cls, mode: str, feature_names_: Iterable[str] | None = None) -> Schema:
        """The fields of a bundle trained in ``mode``."""
        if mode not in MODES:
            raise RuleError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        if feature_names_ is None:
            feature_names_ = CARD_FEATURES if mode == "card" else feature_names(mode)  # type: ignore[arg-type]
        feats = [
            Field(n, n, "bool" if _is_flag(n) else "number", "feature", "feature")
            for n in feature_names_
        ]
        score = Field("score", "score", "number", "model", "the model's calibrated probability")
        return cls(mode, [*_tx_fields(mode), score, *feats])

    @property
    def fields(self) -> Mapping[str, Field]:
        """Every name, aliases included, in catalogue order."""
        return self._fields

    @property
    def columns(self) -> frozenset[str]:
        """Every frame column a rule of this schema may read."""
        return frozenset(f.column for f in self._fields.values())

    def get(self, name: str) -> Field | None:
        """The field called ``name`` (``None`` if there is none)."""
        return self._fields.get(name)

    def absent_reason(self, name: str) -> str | None:
        """Why a known field of another mode is not in this one (``None`` if it is not one)."""
        if name in self._fields:
            return None
        if name in _BALANCES and self.mode == "card":
            return "the card format has no balances"
        if name in _BALANCES_AFTER and self.mode == "pre_auth":
            return "balances after the transaction are not known before authorisation (post_tx)"
        return None

    def closest(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` field names that look like ``name``, best first."""
        names = list(self._fields)
        close = difflib.get_close_matches(name, names, n=n, cutoff=0.6)
        if len(close) < n:
            low = name.lower()
            close += [m for m in names if m.lower() == low and m not in close]
        return close[:n]

    def __repr__(self) -> str:
        return f"Schema(mode={self.mode!r}, fields={len(self._fields)})"
