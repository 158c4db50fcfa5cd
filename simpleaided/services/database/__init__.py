"""The database service (``connection.py``) and the worker threads its blocking calls run on
(``worker.py``); the names other modules import are re-exported here."""

from simpleaided.services.database.connection import DatabaseService, DatabaseSettings
from simpleaided.store.sql.postgres import NOT_INSTALLED, pg_error_line

__all__ = [
    "NOT_INSTALLED",
    "DatabaseService",
    "DatabaseSettings",
    "pg_error_line",
]
