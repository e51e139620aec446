"""WAL checkpoints on a thread of their own (standalone mode).

Left to SQLite, a checkpoint runs inside the COMMIT of whichever write crosses the WAL's size
limit: that write copies the WAL's pages into the database and syncs both files, while it
holds the write lock and the process's SQLite turn. Under load that stalled every station
message of the process for 100-300 ms every second or two. A passive checkpoint takes no write
lock, so run here it overlaps the writes instead of stopping them; the writers' own automatic
checkpoints stay as a backstop (see engine.sqlite_pragmas) should this one fall behind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.engine import sqlite_pragmas
from csms.db.sqlite_writer import has_own_file

log = logging.getLogger(__name__)

# Seconds between checkpoints: the WAL holds about this long of writes. Once a checkpoint has
# copied the whole WAL, the next writer starts it over and syncs its header; that sync waits
# behind the checkpoint's own sync of the database file, so the less each checkpoint copies,
# the shorter that writer's stall (every 1 s: 40-65 ms stalls, about one in 350 ingest
# transactions at 5,500 msg/s; every 0.25 s: one in 1,500 to 3,000).
CHECKPOINT_INTERVAL = 0.25


class SqliteCheckpoints:
    def __init__(self, engine: AsyncEngine, interval: float = CHECKPOINT_INTERVAL) -> None:
        assert has_own_file(engine), "an in-memory database has no WAL"
        self._path = str(engine.url.database)
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoints", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path)
        try:
            sqlite_pragmas(connection, None)
            while not self._stopping.wait(self._interval):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as error:
                    log.warning("WAL checkpoint failed: %s", error)
        finally:
            connection.close()
