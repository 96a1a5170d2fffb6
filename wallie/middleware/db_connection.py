"""Give each message a healthy database connection."""

from __future__ import annotations

from typing import Any

import dramatiq
import peewee
from dramatiq.middleware import Middleware

from ..db.models import database_proxy
from ..logging import get_logger


class DatabaseConnection(Middleware):
    """Open the worker thread's connection before a message and release it after.

    With PostgreSQL the connection goes back to the pool after every
    message, so a connection broken by a database restart fails at most
    the message that was using it; the retry gets a fresh one.  A SQLite
    connection stays open for the thread's next message, because opening
    the file, setting its pragmas and checkpointing the write-ahead log on
    close cost more than a no-op message takes to run.
    """

    def __init__(self) -> None:
        self.logger = get_logger(__name__, type(self).__name__)

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        if database_proxy.obj is not None:
            database_proxy.connect(reuse_if_open=True)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self._release()

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._release()

    def _release(self) -> None:
        database = database_proxy.obj
        if database is None or database.is_closed():
            return

        if database.in_transaction():
            self.logger.warning("Rolling back a transaction left open by an actor.")
            database.rollback()

        if not isinstance(database, peewee.SqliteDatabase):
            database.close()
