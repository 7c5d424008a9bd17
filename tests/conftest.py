"""Shared fixtures: unit tests start no process; integration tests share one real broker."""

from __future__ import annotations
