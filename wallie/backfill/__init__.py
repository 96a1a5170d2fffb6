"""Backfills: send an actor once for each conversation, user, day or user-day."""

from __future__ import annotations

from .run import (
    DEFAULT_BATCH_SIZE,
    BackfillPlan,
    Pacer,
    create_backfill,
    get_backfill,
    message_id_for,
    plan_backfill,
    run_backfill,
)
from .targets import Filters

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "BackfillPlan",
    "Filters",
    "Pacer",
    "create_backfill",
    "get_backfill",
    "message_id_for",
    "plan_backfill",
    "run_backfill",
]
