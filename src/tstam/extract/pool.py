"""Worker processes that take one job at a time and are replaced when one dies.

``concurrent.futures.ProcessPoolExecutor`` breaks as a whole when one of its processes dies (a
``kill -9``, the kernel's OOM killer, a crash): every job not finished fails, and it cannot say
which job killed it. Here each process has its own pipe and runs one job at a time, so a death
names its job, the others go on, and a new process takes the dead one's place.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection as mp_connection
import signal
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["run_each"]


def _main(conn: Any, init: Callable[..., None], init_args: tuple[Any, ...], job: Callable[..., Any]) -> None:
    """A worker: ``init(*init_args)``, then ``job(*args)`` for each ``args`` from ``conn`` until None.
    Ctrl-C is the parent's to handle: it ends the workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    init(*init_args)
    while (args := conn.recv()) is not None:
        conn.send(job(*args))


class _Worker:
    """One worker process, its end of the pipe, and the job it is on (None: idle)."""

    def __init__(self, ctx: Any, init: Callable[..., None], init_args: tuple[Any, ...], job: Callable[..., Any]):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_main, args=(child, init, init_args, job), daemon=True)
        self.proc.start()
        child.close()
        self.item: tuple[Any, ...] | None = None

    def give(self, item: tuple[Any, ...]) -> None:
        self.item = item
        self.conn.send(item)

    def ended(self) -> str:
        """How the process ended (it has ended), e.g. "killed by SIGKILL"."""
        self.proc.join(timeout=5)
        code = self.proc.exitcode
        if code is not None and code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=10)
        self.conn.close()


def run_each(items: Sequence[tuple[Any, ...]], *, job: Callable[..., Any], init: Callable[..., None],
             init_args: tuple[Any, ...], workers: int, on_result: Callable[[tuple[Any, ...], Any], None],
             on_death: Callable[[tuple[Any, ...], str], None]) -> None:
    """Run ``job(*item)`` for every item in ``workers`` spawned processes (each first runs
    ``init(*init_args)``; ``job`` and ``init`` are module-level functions, the items picklable).

    ``on_result(item, result)`` is called here as each job ends; ``on_death(item, how)`` when the
    process running ``item`` died ("killed by SIGKILL"), after which a new process goes on with the
    rest. An exception here (Ctrl-C's KeyboardInterrupt) ends every worker at once.
    """
    ctx = multiprocessing.get_context("spawn")  # no fork after OpenCV/torch threads started
    waiting = list(reversed(items))
    pool = [_Worker(ctx, init, init_args, job) for _ in range(min(workers, len(items)))]
    try:
        for w in pool:
            if waiting:
                w.give(waiting.pop())
        while any(w.item is not None for w in pool):
            busy = [w for w in pool if w.item is not None]
            ready = mp_connection.wait([w.conn for w in busy] + [w.proc.sentinel for w in busy])
            for i, w in enumerate(pool):
                if w.item is None or (w.conn not in ready and w.proc.sentinel not in ready):
                    continue
                item = w.item
                try:
                    result = w.conn.recv()
                except (EOFError, OSError):  # the process ended without an answer
                    how = w.ended()
                    w.stop()
                    pool[i] = w = _Worker(ctx, init, init_args, job)
                    on_death(item, how)
                else:
                    on_result(item, result)
                w.item = None
                if waiting:
                    w.give(waiting.pop())
    finally:
        for w in pool:
            if w.item is None and w.proc.is_alive():
                try:
                    w.conn.send(None)
                except OSError:
                    pass
        for w in pool:
            if w.item is not None:  # interrupted mid-job: end it now
                w.proc.kill()
            w.proc.join(timeout=10)
            w.stop()
