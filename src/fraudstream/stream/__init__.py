"""The Kafka loop: batching, commits, dead letters, window statistics; and producing streams.

Names are imported when first used (PEP 562): the detector's modules pull in LightGBM through the
model bundle, which producing a stream or reading a topic does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from fraudstream._lazy import lazy_attributes

if TYPE_CHECKING:
    from fraudstream.stream._build import build_detector
    from fraudstream.stream._detector import (
        CARD,
        PAYSIM,
        Detector,
        DetectorTopics,
        RecordFormat,
        format_of,
    )
    from fraudstream.stream._guard import EventTimeGuard
    from fraudstream.stream._kafka import (
        DEFAULT_FETCH_WAIT_MS,
        ensure_topics,
        make_admin,
        make_consumer,
        make_producer,
        topic_partitions,
    )
    from fraudstream.stream._kafka_log import KAFKA_LOG, KafkaLog
    from fraudstream.stream._labels import LabelReader, LabelStats
    from fraudstream.stream._metrics import DetectorMetrics
    from fraudstream.stream._models import ModelWatcher
    from fraudstream.stream._pipeline import Job, SinkWorker
    from fraudstream.stream._produce import Message, produce_messages, run_simulation
    from fraudstream.stream._restore import StateRestorer
    from fraudstream.stream._stats import DetectorStats, StageClock
    from fraudstream.stream._watchdog import LagReport, LagWatchdog
    from fraudstream.stream._window import SlidingWindow

#: public name → the submodule that defines it
_WHERE: Final = {
    "CARD": "_detector",
    "DEFAULT_FETCH_WAIT_MS": "_kafka",
    "Detector": "_detector",
    "DetectorMetrics": "_metrics",
    "DetectorStats": "_stats",
    "DetectorTopics": "_detector",
    "EventTimeGuard": "_guard",
    "Job": "_pipeline",
    "KAFKA_LOG": "_kafka_log",
    "KafkaLog": "_kafka_log",
    "LabelReader": "_labels",
    "LabelStats": "_labels",
    "LagReport": "_watchdog",
    "LagWatchdog": "_watchdog",
    "Message": "_produce",
    "ModelWatcher": "_models",
    "PAYSIM": "_detector",
    "RecordFormat": "_detector",
    "SinkWorker": "_pipeline",
    "SlidingWindow": "_window",
    "StageClock": "_stats",
    "StateRestorer": "_restore",
    "build_detector": "_build",
    "ensure_topics": "_kafka",
    "format_of": "_detector",
    "make_admin": "_kafka",
    "make_consumer": "_kafka",
    "make_producer": "_kafka",
    "produce_messages": "_produce",
    "run_simulation": "_produce",
    "topic_partitions": "_kafka",
}

__all__ = [
    "CARD",
    "DEFAULT_FETCH_WAIT_MS",
    "PAYSIM",
    "Detector",
    "DetectorMetrics",
    "DetectorStats",
    "DetectorTopics",
    "EventTimeGuard",
    "Job",
    "KAFKA_LOG",
    "KafkaLog",
    "LabelReader",
    "LabelStats",
    "LagReport",
    "LagWatchdog",
    "Message",
    "ModelWatcher",
    "RecordFormat",
    "SinkWorker",
    "SlidingWindow",
    "StageClock",
    "StateRestorer",
    "build_detector",
    "ensure_topics",
    "format_of",
    "make_admin",
    "make_consumer",
    "make_producer",
    "produce_messages",
    "run_simulation",
    "topic_partitions",
]

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, globals())
