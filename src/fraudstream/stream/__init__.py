"""The Kafka loop: batching, commits, dead letters, window statistics; and producing streams."""

from __future__ import annotations

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
