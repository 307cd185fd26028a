"""Database work on the caller's own connection, in a thread, while the caller computes.

A big COPY is mostly the server's work (parsing the rows, inserting them, keeping the indexes, writing
WAL), done by the PostgreSQL backend, a process of its own; the client meanwhile waits on the socket
with the GIL released. The full recompute fits its models (numpy, one core) in the same seconds: on a
machine of two cores the two run side by side instead of one after the other.

The work runs on the caller's Django connection, lent to one worker thread: the same transaction (it
commits or rolls back with the caller's), the same tenant (the search_path is the connection's), the
same locks. The calls run one after another, in the order given. Until the block ends, the connection
belongs to the thread: a query the caller makes meanwhile raises ConnectionLent instead of
interleaving its messages with the thread's COPY. At the end of the block the caller waits for the
thread; an error of the thread is raised there (after the caller's own error, if it had one: the
thread's is logged then). The full recompute (segmentation.recompute) and the import of new customers
(customers.imports.writing) use it.

    with Overlap() as side:
        previous = side.run(load_previous)
        side.run(write_features, features, replace_all=True)
        frame = fit_models(...)  # no database here
    previous = previous.result()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections

logger = logging.getLogger(__name__)
T = TypeVar("T")


class ConnectionLent(RuntimeError):
    """The caller queried its connection while an Overlap had lent it to a thread."""


class Overlap:
    def __init__(self, using: str = DEFAULT_DB_ALIAS):
        self.using = using
        self._worker: int | None = None
        self._futures: list[Future] = []
        self.seconds: dict[str, float] = {}  # each call's seconds, by the function's name

    def __enter__(self) -> Overlap:
        self.wrapper = connections[self.using]
        self.wrapper.ensure_connection()
        self.wrapper.inc_thread_sharing()
        self._guard = self.wrapper.execute_wrapper(self._only_the_worker)
        self._guard.__enter__()
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="db-overlap", initializer=self._adopt
        )
        return self

    def _adopt(self) -> None:
        # Django's connections are per thread: this one uses the caller's.
        connections[self.using] = self.wrapper
        self._worker = threading.get_ident()

    def _only_the_worker(self, execute, sql, params, many, context):
        if threading.get_ident() != self._worker:
            raise ConnectionLent("the database connection is lent to a thread until the Overlap block ends")
        return execute(sql, params, many, context)

    def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Queue `function(*args, **kwargs)` on the thread; its Future holds the result."""
        future = self._executor.submit(self._timed, function, *args, **kwargs)
        self._futures.append(future)
        return future

    def _timed(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            name = getattr(function, "__name__", "call")
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def __exit__(self, exc_type, exc, tb) -> None:
        failure: BaseException | None = None
        try:
            for future in self._futures:
                error = future.exception()  # waits
                if error is not None and failure is None:
                    failure = error
        finally:
            self._executor.shutdown(wait=True)
            self._guard.__exit__(None, None, None)
            self.wrapper.dec_thread_sharing()
        if failure is None:
            return
        if exc is not None:
            if exc is not failure:
                logger.error("work lent to a thread failed too", exc_info=failure)
            return
        raise failure
