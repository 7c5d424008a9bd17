"""Label files read like transaction files: any-case headers, BOM, N/A, mapped columns, bad rows
skipped and named by line and column."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import polars as pl
import pytest

from fraudstream.errors import SchemaError
from fraudstream.schema import LabelMessage, label_id_of, read_labels
from fraudstream.schema._label_files import complete_labels, incomplete, known_from

DAY = "2024-05-01T10:00:00Z"
DAY_MS = int(dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC).timestamp() * 1000)


def test_bom_any_case_headers_defaults_and_missing_tokens(tmp_path: Path) -> None:
    path = tmp_path / "cb.csv"
    path.write_text(
        "\ufeffTX_ID , Labelled_At_Ms,Account,Reason\n"
        f"t-1,{DAY_MS},C1,N/A\n"
        "t-2,2024-05-01 10:00:00,NA,stolen card\n",
        encoding="utf-8",
    )
    found = read_labels(path)
    assert [m.tx_id for m in found.labels] == ["t-1", "t-2"] and found.rows == [2, 3]
    first, second = found.labels
    assert (first.label, first.source, first.account, first.reason) == (1, "chargeback", "C1", None)
    assert second.labelled_at_ms == DAY_MS and second.account is None
    assert second.label_id == label_id_of("t-2", 1, "chargeback", DAY_MS)
    assert found.skipped == 0 and found.problems == ()


def test_mapped_columns_verdict_words_and_bad_rows_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "disputes.csv"
    path.write_text(
        "case_ref,outcome,decided,customer\n"
        f"a,fraud,{DAY},C1\n"  # line 2
        f"b,genuine,{DAY},C2\n"
        f"c,maybe,{DAY},C3\n"  # line 4: bad verdict
        "d,yes,yesterday,C4\n"  # line 5: bad time
        f",fraud,{DAY},C5\n"  # line 6: no id
        f"e,No,{DAY},C6\n",
        encoding="utf-8",
    )
    columns = {
        "tx_id": "case_ref",
        "label": "OUTCOME",
        "labelled_at": "decided",
        "account": "customer",
    }
    with caplog.at_level(logging.WARNING):
        found = read_labels(path, columns=columns, source="dispute")
    assert [(m.tx_id, m.label, m.source) for m in found.labels] == [
        ("a", 1, "dispute"),
        ("b", 0, "dispute"),
        ("e", 0, "dispute"),
    ]
    assert found.rows_read == 6 and found.skipped == 3
    text = " ".join(found.problems)
    assert "label (column 'outcome'): 1 row (line 4 'maybe')" in text
    assert "labelled_at (column 'decided'): 1 row (line 5 'yesterday')" in text
    assert "tx_id (column 'case_ref'): 1 row (line 6 '')" in text
    assert "skipped 3 of 6 rows" in caplog.text


def test_parquet_with_timestamps_and_a_source_column(tmp_path: Path) -> None:
    path = tmp_path / "labels.parquet"
    pl.DataFrame(
        {
            "txId": ["x", "y", "z"],
            "label_time": [dt.datetime(2024, 5, 1, 10), dt.datetime(2024, 5, 2), None],
            "isFraud": [1, 0, 1],
            "source": ["Analyst", "bank", "chargeback"],
        }
    ).write_parquet(path)
    found = read_labels(path)
    assert [(m.tx_id, m.labelled_at_ms, m.source) for m in found.labels] == [
        ("x", DAY_MS, "analyst")
    ]
    text = " ".join(found.problems)
    assert "source: 1 row (row 2 'bank')" in text and "labelled_at (column 'label_time')" in text


def test_a_missing_required_column_names_the_option(tmp_path: Path) -> None:
    path = tmp_path / "cb.csv"
    path.write_text("id,when\nt,1\n", encoding="utf-8")
    with pytest.raises(SchemaError, match="no column for tx_id, labelled_at.*--tx-id-column"):
        read_labels(path)
    with pytest.raises(SchemaError, match="'nope' \\(for tx_id\\) not in cb.csv"):
        read_labels(path, columns={"tx_id": "nope"})


def test_counterparty_and_transaction_time_columns(tmp_path: Path) -> None:
    path = tmp_path / "cb.csv"
    path.write_text(
        "tx_id,labelled_at_ms,account,Counterparty,TX_TIME\n"
        f"t-1,{DAY_MS},C1,M7,2024-05-01T09:00:00Z\n"
        f"t-2,{DAY_MS},C2,,{DAY_MS - 5}\n"  # no counterparty: left for the lookup
        f"t-3,{DAY_MS},C3,M8,last week\n",  # line 4: a time that does not parse
        encoding="utf-8",
    )
    found = read_labels(path)
    first, second = found.labels
    assert (first.counterparty, first.tx_time_ms) == ("M7", DAY_MS - 3_600_000)
    assert (second.counterparty, second.tx_time_ms) == (None, DAY_MS - 5)
    assert "tx_time (column 'TX_TIME'): 1 row (line 4 'last week')" in " ".join(found.problems)
    mapped = tmp_path / "mapped.csv"
    mapped.write_text(f"id,at,payee,when\nt-9,{DAY_MS},M1,{DAY}\n", encoding="utf-8")
    label = read_labels(
        mapped,
        columns={"tx_id": "id", "labelled_at": "at", "counterparty": "payee", "tx_time": "when"},
    ).labels[0]
    assert (label.counterparty, label.tx_time_ms) == ("M1", DAY_MS)


def test_complete_labels_fills_only_what_is_missing() -> None:
    given = LabelMessage(tx_id="a", label=1, labelled_at_ms=DAY_MS, account="C1")
    whole = LabelMessage(
        tx_id="b", label=0, labelled_at_ms=DAY_MS, account="C2", counterparty="M2", tx_time_ms=1
    )
    unknown = LabelMessage(tx_id="c", label=1, labelled_at_ms=DAY_MS)
    facts = {"a": ("X", "M1", 5), "b": ("Y", "Z", 9)}  # nothing known of "c"
    done, gained = complete_labels([given, whole, unknown], facts)
    assert gained == 1 and done[1:] == [whole, unknown]
    assert (done[0].account, done[0].counterparty, done[0].tx_time_ms) == ("C1", "M1", 5)
    assert done[0].label_id == given.label_id  # the id is of the verdict, not of these facts
    assert [incomplete(m) for m in done] == [False, False, True]


def test_known_from_moves_past_labels_to_now_with_new_ids() -> None:
    past = LabelMessage(tx_id="a", label=1, labelled_at_ms=DAY_MS - 1)
    future = LabelMessage(tx_id="b", label=1, labelled_at_ms=DAY_MS + 1)
    now = LabelMessage(tx_id="c", label=1, labelled_at_ms=DAY_MS)
    moved, n = known_from([past, future, now], DAY_MS)
    assert n == 1 and moved[1:] == [future, now]
    assert moved[0].labelled_at_ms == DAY_MS
    assert moved[0].label_id == label_id_of("a", 1, "analyst", DAY_MS) != past.label_id


def test_doctests() -> None:
    import doctest

    from fraudstream.schema import _label_files

    assert doctest.testmod(_label_files).failed == 0
