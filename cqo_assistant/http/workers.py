"""``cqo serve --workers N``: N worker processes, each with its own listening socket on the port
(``SO_REUSEPORT``), so the kernel spreads connections evenly over them.

Why not ``uvicorn.run(workers=N)``: uvicorn's workers share one listening socket, and asyncio
accepts every pending connection in one go (up to the backlog) in whichever worker wakes first.
Bots and load balancers keep their connections open, so a burst of them all lands on one
worker and stays there: measured with 50 keep-alive clients on 2 cores, one worker took the
whole load (1.1–1.3 cores in use, the other worker idle), and 2 workers gave 1.07–1.25× one.
With a socket per worker, the kernel picks the worker per new connection by its address hash,
and the workers open their sockets together, once all are warm (bench/RESULTS.md, "HTTP load":
2 workers 1.9–2× one).

Each worker loads and warms up its own assistant (the index is read-only) and runs the
draining server of ``serve`` (503 + Retry-After while it stops). The supervisor (this process)
passes SIGTERM/SIGINT on to the workers, waits for them, and starts a worker again when one
dies after it opened its socket; one that dies before could not start, and the others would
fail the same way: the service stops (exit 1). Workers are spawned, not forked: the parent has
loaded the embedding engine, whose OpenMP threads do not survive a fork.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
import time
from types import FrameType
from typing import Any

from ..errors import InputError

STOP_SECONDS = 30.0  # a worker still running this long after the signal is killed
START_SECONDS = 600.0  # the workers wait this long for each other to load


def listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def port_is_free(host: str, port: int) -> None:
    """Refuse a port another server holds. A plain bind (no SO_REUSEPORT), so the workers never
    end up sharing the port with some other program's socket."""
    try:
        listening_socket(host, port, reuse_port=False).close()
    except OSError as e:
        raise InputError(
            f"无法监听 / cannot listen on {host}:{port} ({e.strerror or e}): "
            "换一个端口 (--port) 或先停掉占用它的服务 / pick another --port or stop the server "
            "that holds it"
        ) from e


def _worker(host: str, port: int, up: Any, ready: Any = None) -> None:
    """One worker process: settings from the CQO_* environment the supervisor set. At start,
    ``ready`` (a barrier of all the workers) holds each warm worker until every one is, so the
    port opens on all of them at once: a client that keeps its connection open stays with the
    worker it first reached, and the first clients would otherwise all stay with the worker
    that happened to be ready first."""
    from ..api import Assistant
    from ..settings import Settings
    from .guard import configure_access_log
    from .serve import draining_server, warm_app

    configure_access_log()
    settings = Settings.load()
    app = warm_app(settings, Assistant.load(settings))  # warm before this worker's socket opens
    if ready is not None:
        ready.wait(START_SECONDS)  # a worker that cannot start breaks it: this one stops too
    sock = listening_socket(host, port, reuse_port=True)
    sock.listen(2048)
    up.set()
    draining_server(app, host, port).run(sockets=[sock])


def supervise(host: str, port: int, workers: int) -> int:
    ctx = multiprocessing.get_context("spawn")
    stopping: list[int] = []
    ready = ctx.Barrier(workers)
    up: dict[int, Any] = {}  # set by each worker once its socket is open

    def start(first: bool = False) -> Any:  # a worker started again opens at once
        event = ctx.Event()
        p = ctx.Process(target=_worker, args=(host, port, event, ready if first else None))
        p.start()
        up[id(p)] = event
        return p

    def on_signal(sig: int, _frame: FrameType | None) -> None:
        stopping.append(sig)
        for p in procs:
            if p.is_alive() and p.pid:
                p.terminate()  # SIGTERM: the worker drains, then stops

    procs = [start(first=True) for _ in range(workers)]
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    failed = False
    try:
        while not stopping:
            for i, p in enumerate(procs):
                if p.is_alive() or stopping:
                    continue
                if not up.pop(id(p)).is_set():
                    # it could not start (its error is above): another would fail the same way
                    print(f"worker {p.pid} failed ({p.exitcode}); stopping", file=sys.stderr)
                    failed = True
                    on_signal(signal.SIGTERM, None)
                    break
                print(f"worker {p.pid} exited ({p.exitcode}); starting another", file=sys.stderr)
                procs[i] = start()
            time.sleep(0.5)
        deadline = time.monotonic() + STOP_SECONDS
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return 1 if failed else 0
