"""Every feature has one readable label, and the table holds no label for a feature that is gone."""

from __future__ import annotations

import doctest

import pytest

from fraudstream.features import (
    CARD_FEATURES,
    FEATURE_LABELS,
    _labels,
    feature_label,
    feature_names,
)

MODES = {
    "pre_auth": feature_names("pre_auth"),
    "post_tx": feature_names("post_tx"),
    "card": CARD_FEATURES,
}


@pytest.mark.parametrize("mode", list(MODES))
def test_every_feature_of_every_mode_has_a_distinct_label(mode: str) -> None:
    names = MODES[mode]
    missing = [n for n in names if n not in FEATURE_LABELS]
    assert missing == []
    texts = [FEATURE_LABELS[n].text for n in names]
    assert len(set(texts)) == len(texts), "two features of one mode read the same"
    assert all(t[0].isupper() and t != n for t, n in zip(texts, names, strict=True))


def test_no_label_for_a_feature_that_does_not_exist() -> None:
    known = {n for names in MODES.values() for n in names}
    assert set(FEATURE_LABELS) - known == set()


def test_kind_flags_name_their_type_and_unknown_features_read_as_themselves() -> None:
    assert feature_label("kind_payment").text == "Type is PAYMENT"
    assert feature_label("kind_payment").unit == "flag"
    assert feature_label("amount_vs_mean_by_account").unit == "ratio"
    assert feature_label("my_extra_field").text == "my extra field"


def test_doctests() -> None:
    assert doctest.testmod(_labels).failed == 0
