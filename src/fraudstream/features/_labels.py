"""Readable names and units of every feature, for people (reason codes, reports, the dashboard).

One table, next to the feature names it describes: a test checks that every name of
:func:`~fraudstream.features.feature_names` and :data:`~fraudstream.features.CARD_FEATURES` has
a label here. Units say how a value reads (an amount, a yes/no flag, a multiple, seconds …), so
an edge can format ``12.3`` as "12.3×" and ``0.0`` of a flag as "no".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from fraudstream.schema import KINDS

__all__ = ["FEATURE_LABELS", "FeatureLabel", "Unit", "feature_label"]

#: How a feature's value reads: ``amount`` (money), ``flag`` (0/1), ``count``, ``ratio`` (a
#: multiple, ×), ``share`` (0–1, shown as %), ``seconds``, ``days``, ``hour`` (0–23 UTC),
#: ``number`` (anything else: a log, a z-score, a balance error).
Unit = Literal["amount", "flag", "count", "ratio", "share", "seconds", "days", "hour", "number"]


@dataclass(frozen=True)
class FeatureLabel:
    """A feature's readable name (``text``, sentence case, no unit) and its ``unit``."""

    text: str
    unit: Unit


def _card_windows() -> dict[str, FeatureLabel]:
    out: dict[str, FeatureLabel] = {}
    for days in (1, 7, 30):
        span = "1 day" if days == 1 else f"{days} days"
        out[f"CUSTOMER_ID_NB_TX_{days}DAY_WINDOW"] = FeatureLabel(
            f"Customer's transactions in {span}", "count"
        )
        out[f"CUSTOMER_ID_AVG_AMOUNT_{days}DAY_WINDOW"] = FeatureLabel(
            f"Customer's mean amount over {span}", "amount"
        )
        out[f"TERMINAL_ID_NB_TX_{days}DAY_WINDOW"] = FeatureLabel(
            f"Terminal's transactions in {span} (label delay)", "count"
        )
        out[f"TERMINAL_ID_RISK_{days}DAY_WINDOW"] = FeatureLabel(
            f"Terminal's fraud share over {span} (label delay)", "share"
        )
    return out


_LABELS: dict[str, FeatureLabel] = {
    # PaySim, pre-authorisation
    "amount": FeatureLabel("Amount", "amount"),
    "log_amount": FeatureLabel("Amount (natural log)", "number"),
    **{f"kind_{k.lower()}": FeatureLabel(f"Type is {k}", "flag") for k in KINDS},
    "old_balance_orig": FeatureLabel("Sender's balance before", "amount"),
    "old_balance_orig_missing": FeatureLabel("Sender's balance unknown", "flag"),
    "amount_to_old_balance_orig": FeatureLabel("Amount relative to the sender's balance", "ratio"),
    "drains_balance": FeatureLabel("Empties the sender's balance", "flag"),
    "old_balance_dest": FeatureLabel("Recipient's balance before", "amount"),
    "old_balance_dest_missing": FeatureLabel("Recipient's balance unknown", "flag"),
    "hour_of_day": FeatureLabel("Hour of day (UTC)", "hour"),
    "tx_count_by_account_1h": FeatureLabel("Account's transactions in the last hour", "count"),
    "amount_sum_by_account_1h": FeatureLabel("Account's total amount in the last hour", "amount"),
    "amount_vs_mean_by_account": FeatureLabel("Amount relative to the account's mean", "ratio"),
    "seconds_since_last_by_account": FeatureLabel(
        "Time since the account's previous transaction", "seconds"
    ),
    "new_counterparty_for_account": FeatureLabel("New recipient for the account", "flag"),
    "seconds_since_account_received": FeatureLabel(
        "Time since the account last received money", "seconds"
    ),
    "received_amount_ratio": FeatureLabel(
        "Amount relative to what the account last received", "ratio"
    ),
    "tx_count_to_counterparty_1h": FeatureLabel(
        "Recipient's incoming transactions in the last hour", "count"
    ),
    "distinct_senders_to_counterparty_1h": FeatureLabel(
        "Distinct senders to the recipient in the last hour", "count"
    ),
    # PaySim, from labels (fraud-labels) known at the transaction's time
    "confirmed_frauds_to_counterparty_1d": FeatureLabel(
        "Frauds to the recipient confirmed in the last day", "count"
    ),
    "confirmed_frauds_to_counterparty_7d": FeatureLabel(
        "Frauds to the recipient confirmed in the last 7 days", "count"
    ),
    "confirmed_frauds_to_counterparty_30d": FeatureLabel(
        "Frauds to the recipient confirmed in the last 30 days", "count"
    ),
    "counterparty_fraud_share_30d": FeatureLabel(
        "Share of the recipient's verdicts that were fraud (30 days)", "share"
    ),
    "confirmed_frauds_by_account_30d": FeatureLabel(
        "Frauds from this account confirmed in the last 30 days", "count"
    ),
    "confirmed_frauds_to_account_30d": FeatureLabel(
        "Frauds to this account confirmed in the last 30 days (mule)", "count"
    ),
    "confirmed_frauds_to_counterparty_tx_6h": FeatureLabel(
        "Frauds to the recipient in the last 6 hours, confirmed by now", "count"
    ),
    "confirmed_frauds_by_account_tx_6h": FeatureLabel(
        "Frauds from this account in the last 6 hours, confirmed by now", "count"
    ),
    # PaySim, post-transaction
    "error_balance_orig": FeatureLabel("Sender's balance mismatch", "amount"),
    "error_balance_orig_missing": FeatureLabel("Sender's balances unknown", "flag"),
    "error_balance_dest": FeatureLabel("Recipient's balance mismatch", "amount"),
    "error_balance_dest_missing": FeatureLabel("Recipient's balances unknown", "flag"),
    # card format: the Fraud Detection Handbook's
    "TX_AMOUNT": FeatureLabel("Amount", "amount"),
    "TX_DURING_WEEKEND": FeatureLabel("At the weekend", "flag"),
    "TX_DURING_NIGHT": FeatureLabel("At night", "flag"),
    **_card_windows(),
    # card format: ours
    "amount_vs_mean_by_customer_30d": FeatureLabel(
        "Amount relative to the customer's 30-day mean", "ratio"
    ),
    "amount_vs_max_by_customer_30d": FeatureLabel(
        "Amount relative to the customer's 30-day maximum", "ratio"
    ),
    "seconds_since_last_tx_by_customer": FeatureLabel(
        "Time since the customer's previous transaction", "seconds"
    ),
    "tx_count_by_customer_1h": FeatureLabel("Customer's transactions in the last hour", "count"),
    "new_terminal_for_customer": FeatureLabel("New terminal for the customer", "flag"),
    "tx_count_by_terminal_1d": FeatureLabel("Terminal's transactions in the last day", "count"),
    "terminal_frauds_90d_delayed": FeatureLabel(
        "Terminal's known frauds in 90 days (label delay)", "count"
    ),
    "terminal_risk_90d_delayed": FeatureLabel(
        "Terminal's fraud share over 90 days (label delay)", "share"
    ),
    "customer_frauds_30d_delayed": FeatureLabel(
        "Customer's known frauds in 30 days (label delay)", "count"
    ),
    "amount_vs_median_by_customer_30d": FeatureLabel(
        "Amount relative to the customer's 30-day median", "ratio"
    ),
    "amount_zscore_by_customer_30d": FeatureLabel(
        "Amount's z-score among the customer's 30 days", "number"
    ),
    "high_amount_count_by_customer_14d": FeatureLabel(
        "Customer's unusually high amounts in 14 days", "count"
    ),
    "terminal_fraud_streak_delayed": FeatureLabel(
        "Terminal's current run of known frauds (label delay)", "count"
    ),
    "days_since_terminal_streak_start_delayed": FeatureLabel(
        "Days since the terminal's fraud run began (label delay)", "days"
    ),
    "days_since_terminal_fraud_delayed": FeatureLabel(
        "Days since the terminal's last known fraud (label delay)", "days"
    ),
    "terminal_risk_last5_delayed": FeatureLabel(
        "Fraud share of the terminal's last 5 labelled transactions", "share"
    ),
}

#: Feature name → readable label, for every feature of every mode.
FEATURE_LABELS: Final[Mapping[str, FeatureLabel]] = MappingProxyType(_LABELS)


def feature_label(name: str) -> FeatureLabel:
    """The label of ``name``; a feature not in the table (a user's extra field) reads as itself.

    >>> feature_label("amount_vs_mean_by_account").text
    "Amount relative to the account's mean"
    >>> feature_label("loyalty_points")
    FeatureLabel(text='loyalty points', unit='number')
    """
    found = FEATURE_LABELS.get(name)
    return found if found is not None else FeatureLabel(name.replace("_", " "), "number")
