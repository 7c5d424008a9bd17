"""The vocabulary of a schema declaration: roles, time units, extra kinds and their names.

A file's column plays a canonical **role** (the account, the amount, the event time in some
unit, …) or is an **extra field** of some kind. A role may be written as its own name
(``account``), as a message field (``customerId``, ``nameOrig``) or as a file column of the
supported layouts (``CUSTOMER_ID``); the last two also say which format they belong to.
"""

from __future__ import annotations

from typing import Final, Literal, NamedTuple, get_args

__all__ = [
    "EXTRA_KINDS",
    "FORMATS",
    "ROLES",
    "ROLE_HELP",
    "TIME_UNITS",
    "UNIT_HELP",
    "Alias",
    "ExtraKind",
    "FileFormat",
    "Role",
    "TimeUnit",
    "alias_of",
    "column_for",
    "file_names",
    "role_formats",
]

FileFormat = Literal["paysim", "card"]
Role = Literal[
    "tx_id",
    "event_time",
    "account",
    "counterparty",
    "amount",
    "type",
    "old_balance_orig",
    "new_balance_orig",
    "old_balance_dest",
    "new_balance_dest",
    "label",
    "flagged",
    "scenario",
]
TimeUnit = Literal["ms", "s", "iso", "step_hours", "s_from_start"]
ExtraKind = Literal["categorical", "numeric", "boolean", "latitude", "longitude"]

FORMATS: Final[tuple[FileFormat, ...]] = get_args(FileFormat)
ROLES: Final[tuple[Role, ...]] = get_args(Role)
TIME_UNITS: Final[tuple[TimeUnit, ...]] = get_args(TimeUnit)
EXTRA_KINDS: Final[tuple[ExtraKind, ...]] = get_args(ExtraKind)

ROLE_HELP: Final[dict[Role, str]] = {
    "tx_id": "the transaction's id",
    "event_time": "when it happened (with its unit)",
    "account": "who pays: the account, customer or card",
    "counterparty": "who is paid: the counterparty, merchant or terminal",
    "amount": "the amount (>= 0)",
    "type": "PAYMENT, TRANSFER, CASH_OUT, CASH_IN or DEBIT (PaySim)",
    "old_balance_orig": "payer's balance before (PaySim)",
    "new_balance_orig": "payer's balance after (PaySim)",
    "old_balance_dest": "payee's balance before (PaySim)",
    "new_balance_dest": "payee's balance after (PaySim)",
    "label": "1 = fraud, 0 = genuine (ground truth, never a model input)",
    "flagged": "the bank's own flag, 0 or 1 (PaySim)",
    "scenario": "the fraud scenario's name or number",
}
UNIT_HELP: Final[dict[TimeUnit, str]] = {
    "ms": "milliseconds since 1970-01-01 UTC",
    "s": "seconds since 1970-01-01 UTC",
    "iso": "a date and time such as 2019-01-01 00:00:18 (UTC unless it says otherwise)",
    "step_hours": "whole hours since the start (PaySim's step)",
    "s_from_start": "seconds since the start (the handbook's TX_TIME_SECONDS)",
}


class Alias(NamedTuple):
    """What a role name means: the role, the format it implies and the time unit it implies."""

    role: Role
    format: FileFormat | None = None
    unit: TimeUnit | None = None


#: Each format's column for a role (the column names ``read_transactions`` returns).
_COLUMNS: Final[dict[FileFormat, dict[Role, str]]] = {
    "paysim": {
        "tx_id": "txId",
        "account": "nameOrig",
        "counterparty": "nameDest",
        "amount": "amount",
        "type": "type",
        "old_balance_orig": "oldbalanceOrg",
        "new_balance_orig": "newbalanceOrig",
        "old_balance_dest": "oldbalanceDest",
        "new_balance_dest": "newbalanceDest",
        "label": "isFraud",
        "flagged": "isFlaggedFraud",
        "scenario": "fraudScenario",
    },
    "card": {
        "tx_id": "TRANSACTION_ID",
        "account": "CUSTOMER_ID",
        "counterparty": "TERMINAL_ID",
        "amount": "TX_AMOUNT",
        "label": "TX_FRAUD",
        "scenario": "TX_FRAUD_SCENARIO",
    },
}
#: Each format's column for the event time, by unit (a converted unit lands in the same column).
_TIME_COLUMNS: Final[dict[FileFormat, dict[TimeUnit, str]]] = {
    "paysim": {"ms": "eventTimeMs", "s": "eventTimeMs", "iso": "eventTimeMs", "step_hours": "step"},
    "card": {
        "ms": "TX_DATETIME",
        "s": "TX_DATETIME",
        "iso": "TX_DATETIME",
        "s_from_start": "TX_TIME_SECONDS",
    },
}
#: Names of fields in messages and files (PaySim's, the card messages', the handbook's).
_FIELD_NAMES: Final[dict[str, Alias]] = {
    "step": Alias("event_time", "paysim", "step_hours"),
    "type": Alias("type", "paysim"),
    "eventTimeMs": Alias("event_time", None, "ms"),
    "txId": Alias("tx_id"),
    "amount": Alias("amount"),
    "isFraud": Alias("label"),
    "fraudScenario": Alias("scenario"),
    "nameOrig": Alias("account", "paysim"),
    "nameDest": Alias("counterparty", "paysim"),
    "oldbalanceOrg": Alias("old_balance_orig", "paysim"),
    "newbalanceOrig": Alias("new_balance_orig", "paysim"),
    "oldbalanceDest": Alias("old_balance_dest", "paysim"),
    "newbalanceDest": Alias("new_balance_dest", "paysim"),
    "isFlaggedFraud": Alias("flagged", "paysim"),
    "customerId": Alias("account", "card"),
    "terminalId": Alias("counterparty", "card"),
    "TRANSACTION_ID": Alias("tx_id", "card"),
    "TX_DATETIME": Alias("event_time", "card", "iso"),
    "TX_TIME_SECONDS": Alias("event_time", "card", "s_from_start"),
    "CUSTOMER_ID": Alias("account", "card"),
    "TERMINAL_ID": Alias("counterparty", "card"),
    "TX_AMOUNT": Alias("amount", "card"),
    "TX_FRAUD": Alias("label", "card"),
    "TX_FRAUD_SCENARIO": Alias("scenario", "card"),
}
_SYNONYMS: Final[dict[str, Alias]] = {
    "customer": Alias("account"),
    "card": Alias("account"),
    "merchant": Alias("counterparty"),
    "terminal": Alias("counterparty"),
}
_ALIASES: Final[dict[str, Alias]] = {
    **{name.lower(): alias for name, alias in _FIELD_NAMES.items()},
    **_SYNONYMS,
    **{role: Alias(role) for role in ROLES},
}
_PAYSIM_ONLY: Final = frozenset(set(_COLUMNS["paysim"]) - set(_COLUMNS["card"]))


def alias_of(name: str) -> Alias | None:
    """What ``name`` (a role, a message field or a file column; any case) means, if anything."""
    return _ALIASES.get(name.strip().lower())


def file_names() -> dict[str, Alias]:
    """The message fields and file columns a file's column is matched by when undeclared."""
    return dict(_FIELD_NAMES)


def role_formats(alias: Alias) -> tuple[FileFormat, ...]:
    """The formats in which ``alias`` has a column."""
    if alias.format is not None:
        return (alias.format,)
    if alias.role == "event_time" and alias.unit is not None:
        return tuple(f for f in FORMATS if alias.unit in _TIME_COLUMNS[f])
    return ("paysim",) if alias.role in _PAYSIM_ONLY else FORMATS


def column_for(fmt: FileFormat, role: Role, unit: TimeUnit | None = None) -> str | None:
    """The column ``read_transactions`` gives ``role`` in ``fmt`` (None: the format has none)."""
    if role == "event_time":
        return None if unit is None else _TIME_COLUMNS[fmt].get(unit)
    return _COLUMNS[fmt].get(role)
