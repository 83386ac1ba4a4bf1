"""``cqo serve --workers N``: N worker processes, each with its own listening socket on the port
(``SO_REUSEPORT``), so the kernel spreads connections evenly over them.

Why not ``uvicorn.run(workers=N)``: uvicorn's workers share one listening socket, and asyncio
accepts every pending connection in one go (up to the backlog) in whichever worker wakes first.
Bots and load balancers keep their connections open, so a burst of them all lands on one
worker and stays there: measured with 50 keep-alive clients on 2 cores, one worker took the
whole load (1.1–1.3 cores in use, the other worker idle), and 2 workers gave 1.07–1.25× one.
With a socket per worker, the kernel picks the worker per new connection by its address hash.

Each worker loads and warms up its own assistant (the index is read-only) and runs the
draining server of ``serve`` (503 + Retry-After while it stops). The supervisor (this process)
passes SIGTERM/SIGINT on to the workers, waits for them, and starts a worker again when one
dies on its own. Workers are spawned, not forked: the parent has loaded the embedding engine,
whose OpenMP threads do not survive a fork.
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
EARLY_EXIT_SECONDS = 60.0  # a worker dying this soon after its start is not restarted


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


def _worker(host: str, port: int) -> None:
    """One worker process: settings from the CQO_* environment the supervisor set."""
    from ..api import Assistant
    from ..settings import Settings
    from .app import create_app, warm_up
    from .guard import configure_access_log
    from .serve import draining_server

    configure_access_log()
    settings = Settings.load()
    assistant = Assistant.load(settings)
    warm_up(assistant)  # before this worker's socket opens: no request waits for lazy loading
    sock = listening_socket(host, port, reuse_port=True)
    sock.listen(2048)
    draining_server(create_app(settings, assistant), host, port).run(sockets=[sock])


def supervise(host: str, port: int, workers: int) -> int:
    ctx = multiprocessing.get_context("spawn")
    stopping: list[int] = []

    started: dict[int, float] = {}

    def start() -> Any:
        p = ctx.Process(target=_worker, args=(host, port), name="cqo-worker")
        p.start()
        started[id(p)] = time.monotonic()
        return p

    def on_signal(sig: int, _frame: FrameType | None) -> None:
        stopping.append(sig)
        for p in procs:
            if p.is_alive() and p.pid:
                p.terminate()  # SIGTERM: the worker drains, then stops

    procs = [start() for _ in range(workers)]
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    failed = False
    try:
        while not stopping:
            for i, p in enumerate(procs):
                if p.is_alive() or stopping:
                    continue
                if time.monotonic() - started[id(p)] < EARLY_EXIT_SECONDS:
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
