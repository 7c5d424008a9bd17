"""How detectors answer ``fraudstream serve``: on the API's reply listener when they may, on
the decisions topic when the listener is off or outside the detectors' allowed networks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fraudstream.model import Bundle

from ._api_stack import open_stack, record

pytestmark = pytest.mark.integration


def _answers(metrics: str) -> dict[str, float]:
    """``fraudstream_api_answers_total`` by path, from the API's /metrics text."""
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("fraudstream_api_answers_total{"):
            labels, value = line.rsplit(" ", 1)
            out[labels.split('"')[1]] = float(value)
    return out


@pytest.mark.parametrize(
    ("api", "detect"),
    [
        pytest.param({"direct_replies": False}, {}, id="listener-off"),
        pytest.param({}, {"reply_networks": ("10.0.0.0/8",)}, id="loopback-not-allowed"),
    ],
)
def test_answers_come_on_the_topic_when_they_cannot_come_directly(
    bootstrap: str,
    models_dir: Path,
    bundle: Bundle,
    tmp_path: Path,
    api: dict[str, Any],
    detect: dict[str, Any],
) -> None:
    with open_stack(
        bootstrap, models_dir, bundle, tmp_path, detect=detect, budget_ms=1_500, **api
    ) as stack:
        s = stack.server
        for i in range(5):
            answer = s.post("/v1/decisions", record(f"r{i}-{stack.unique}")).json()
            assert not answer["fallback"] and answer["decision"] in ("allow", "review", "block")
        paths = _answers(s.get("/metrics", scope="").text)
    assert paths.get("topic", 0) >= 5 and "direct" not in paths
