"""Training, evaluation, cost thresholds, explanations and versioned model bundles.

``train_bundle`` replays history through the same :class:`~fraudstream.features.FeatureEngine` the
detector uses, fits LightGBM and logistic regression on a time-ordered split, keeps as the scoring
model the one with the lower expected cost on a validation part of the training period,
calibrates, picks review/block thresholds from :class:`Costs` and returns a :class:`Bundle`.
A saved bundle is a candidate until :func:`promote` puts it in service (:func:`latest_bundle`).

The names below are imported when first used (PEP 562): LightGBM and scikit-learn take seconds
to import, and a command that only needs :class:`Costs` (rules, lists, export, users) or
imports this package through the store should not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from fraudstream._lazy import lazy_attributes

if TYPE_CHECKING:
    from fraudstream.model._bundle import Bundle
    from fraudstream.model._costs import Costs, Thresholds
    from fraudstream.model._fdh import (
        card_precision_at_k,
        fdh_features,
        load_fdh,
        run_ch3,
        run_ch5,
    )
    from fraudstream.model._registry import (
        BundleEntry,
        latest_bundle,
        list_bundles,
        promote,
        promoted_version,
    )
    from fraudstream.model._train import MIN_TEST_FRAUDS, train_bundle

#: public name → the submodule that defines it
_WHERE: Final = {
    "MIN_TEST_FRAUDS": "_train",
    "Bundle": "_bundle",
    "BundleEntry": "_registry",
    "Costs": "_costs",
    "Thresholds": "_costs",
    "card_precision_at_k": "_fdh",
    "fdh_features": "_fdh",
    "latest_bundle": "_registry",
    "list_bundles": "_registry",
    "load_fdh": "_fdh",
    "promote": "_registry",
    "promoted_version": "_registry",
    "run_ch3": "_fdh",
    "run_ch5": "_fdh",
    "train_bundle": "_train",
}

__all__ = [
    "MIN_TEST_FRAUDS",
    "Bundle",
    "BundleEntry",
    "Costs",
    "Thresholds",
    "card_precision_at_k",
    "fdh_features",
    "latest_bundle",
    "list_bundles",
    "load_fdh",
    "promote",
    "promoted_version",
    "run_ch3",
    "run_ch5",
    "train_bundle",
]


__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, globals())
