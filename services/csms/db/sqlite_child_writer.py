"""Hot-path SQLite transactions run by a child process (standalone ingest).

`csms run` is one process, and its interpreter lock is one core's worth: at a few thousand
station messages per second, the ingest writer's thread (row building, the NotifyEvent sequence
logic, binding values) took about a quarter of the lock from the event loop. Here a transaction
runs in a child process with a connection of its own; the parent pickles the batch as plain
tuples and waits for the answer, holding the engine's SQLite turn meanwhile (sqlite_turns.py),
as the thread did. A transaction is a module-level function `work(connection, *args)`.

The child reads framed requests on its stdin and answers on its stdout; it ends when its stdin
closes, which is also what the parent's death does to it. It ignores SIGINT and SIGTERM: a
stopping parent still writes the batches in flight, then closes its stdin. A child that dies
fails the transaction it ran (SQLite rolls it back) and is started again by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import sqlite3
import sys
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.engine import sqlite_pragmas
from csms.db.sqlite_turns import turns_of
from csms.db.sqlite_writer import has_own_file, run_transaction
from csms.heap import tune_garbage_collector

log = logging.getLogger(__name__)

T = TypeVar("T")

_HEADER = 4
_CLOSE_TIMEOUT = 10.0


class SqliteChildGone(sqlite3.OperationalError):
    """The child process ended before it answered; its transaction was rolled back."""


class SqliteChildWriter:
    def __init__(self, engine: AsyncEngine) -> None:
        assert has_own_file(engine), "an in-memory database is seen by one connection only"
        self._path = str(engine.url.database)
        self._turns = turns_of(engine.sync_engine)
        self._child: _Child | None = None
        self._closed = False

    async def start(self) -> None:
        """Start the child now rather than with the first transaction, which then waits for
        it to import its modules."""
        async with self._turns.turn():
            await self._running()

    async def transaction(self, work: Callable[..., T], *args: Any) -> T:
        """`work(connection, *args)` in one transaction in the child, committed if it returns.
        `work` must be a module-level function, `args` picklable."""
        async with self._turns.turn():
            child = await self._running()
            result: T = await child.call(pickle.dumps((work, args), pickle.HIGHEST_PROTOCOL))
            return result

    @property
    def child_pid(self) -> int | None:
        """The child's process id, while one runs."""
        return None if self._child is None or self._child.ended else self._child.pid

    async def _running(self) -> _Child:
        if self._closed:
            # As a closed thread pool refuses work: no child is started after the last one.
            raise RuntimeError("SQLite writer closed")
        if self._child is None or self._child.ended:
            self._child = await _Child.start(self._path)
        return self._child

    async def close(self) -> None:
        async with self._turns.turn():
            self._closed = True
            child, self._child = self._child, None
            if child is not None:
                await child.close()


class _Child:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.gone = False
        # One exchange at a time: a caller cancelled midway leaves its exchange running, so
        # that the next request never reads the answer meant for it.
        self._exchanging = asyncio.Lock()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def ended(self) -> bool:
        """Lost during an exchange, or seen to exit (killed while idle, say)."""
        return self.gone or self._process.returncode is not None

    @classmethod
    async def start(cls, path: str) -> _Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            path,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def call(self, request: bytes) -> Any:
        exchange = asyncio.ensure_future(self._exchange(request))
        # Its caller may be gone by the time it fails.
        exchange.add_done_callback(_retrieve)
        ok, value = await asyncio.shield(exchange)
        if ok:
            return value
        raise value

    async def _exchange(self, request: bytes) -> tuple[bool, Any]:
        async with self._exchanging:
            stdin, stdout = self._process.stdin, self._process.stdout
            assert stdin is not None
            assert stdout is not None
            try:
                stdin.write(len(request).to_bytes(_HEADER, "big") + request)
                header = await stdout.readexactly(_HEADER)
                answer = await stdout.readexactly(int.from_bytes(header, "big"))
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                self.gone = True
                code = await self._process.wait()
                raise SqliteChildGone(f"SQLite writer process ended (exit code {code})") from exc
            # The pipe joins this process and the child it started, nothing else.
            result: tuple[bool, Any] = pickle.loads(answer)  # noqa: S301
            return result

    async def close(self) -> None:
        async with self._exchanging:
            self.gone = True
            if self._process.stdin is not None:
                self._process.stdin.close()
            try:
                await asyncio.wait_for(self._process.wait(), _CLOSE_TIMEOUT)
            except TimeoutError:
                log.warning("SQLite writer process did not end; killing it")
                with contextlib.suppress(ProcessLookupError):
                    self._process.kill()
                await self._process.wait()


def _retrieve(done: asyncio.Future[Any]) -> None:
    if not done.cancelled():
        done.exception()


def serve(path: str, requests: BinaryIO, answers: BinaryIO) -> None:
    """The child's loop: a transaction per request, until the requests end."""
    connection = sqlite3.connect(path)
    sqlite_pragmas(connection, None)
    tuned = False
    try:
        while header := requests.read(_HEADER):
            if len(header) < _HEADER:
                return
            request = requests.read(int.from_bytes(header, "big"))
            try:
                # From the parent process only (its stdin is this pipe).
                work, args = pickle.loads(request)  # noqa: S301
                result: tuple[bool, Any] = (True, run_transaction(connection, _bound(work, args)))
            except Exception as exc:  # every failure goes back to the caller, who decides
                result = (False, exc)
            try:
                answer = pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
            except Exception:
                answer = pickle.dumps((False, sqlite3.OperationalError(repr(result[1]))))
            answers.write(len(answer).to_bytes(_HEADER, "big") + answer)
            answers.flush()
            if not tuned:
                # Start-up ends with the first request, which imported its work's modules: from
                # then on, full collections skip them (ADR 0011; left at the defaults, they took
                # 40 ms in the middle of a batch).
                tune_garbage_collector()
                tuned = True
    finally:
        connection.close()


def _bound(work: Callable[..., T], args: tuple[Any, ...]) -> Callable[[sqlite3.Connection], T]:
    return lambda connection: work(connection, *args)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The answers get the process's stdout to themselves; anything printed goes to stderr.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.argv[1], sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
