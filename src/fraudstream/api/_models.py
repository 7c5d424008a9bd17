"""The API's responses (pydantic models: they are the OpenAPI document's schemas)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from fraudstream.dashboard._queries import AlertRow

__all__ = [
    "AlertsPage",
    "DecisionOut",
    "Health",
    "LabelAccepted",
    "Readiness",
    "ReasonOut",
    "TransactionOut",
]

Decision = Literal["allow", "review", "block"]


class ReasonOut(BaseModel):
    """A reason code: a feature, its value and its contribution to the score (log-odds)."""

    feature: str
    value: float | None = Field(description="null: the feature had no value (NaN)")
    contribution: float | None


class DecisionOut(BaseModel):
    """The decision on one transaction."""

    tx_id: str
    decision: Decision
    score: float | None = Field(None, description="calibrated fraud probability (null: fallback)")
    reasons: list[ReasonOut] = Field(default_factory=list, description="top reasons of an alert")
    rules_fired: list[str] = Field(default_factory=list, description="live rules that acted")
    rule_set_version: int | None = None
    model_version: str | None = None
    fallback: bool = Field(False, description="true: no decision within the budget")
    fallback_reason: Literal["budget", "broker"] | None = None


class TransactionOut(BaseModel):
    """A stored transaction with its features, decision and alert."""

    tx_id: str
    event_time_ms: int
    account: str
    counterparty: str
    kind: str
    amount: float
    old_balance_orig: float | None = None
    new_balance_orig: float | None = None
    old_balance_dest: float | None = None
    new_balance_dest: float | None = None
    label: int | None = None
    step: int
    score: float | None = None
    decision: Decision
    model_version: str
    processed_at_ms: int
    rules_fired: list[str] = Field(default_factory=list)
    rule_set_version: int | None = None
    features: dict[str, float]
    reasons: list[ReasonOut] = Field(default_factory=list)
    alert_status: str | None = None


class AlertsPage(BaseModel):
    """One page of alerts and how many match the filters."""

    total: int
    limit: int
    offset: int
    alerts: list[AlertRow]


class LabelAccepted(BaseModel):
    """A label published on the labels topic."""

    label_id: str
    tx_id: str
    labelled_at_ms: int


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Whether the API can decide: the broker, the store and a promoted model."""

    ready: bool
    broker: str
    store: str
    model: str
