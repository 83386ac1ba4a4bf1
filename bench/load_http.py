"""Bounded HTTP load on loopback: C concurrent clients × R requests to POST /v1/ask.

Run: ``.venv/bin/python bench/load_http.py [--clients 50] [--requests 20] [--workers 1]``.
Starts ``cqo serve`` on a free 127.0.0.1 port (the built index, CQO_* env as usual), sends the
gold questions round-robin with httpx, stops the server, and rewrites the "## HTTP load"
section of bench/RESULTS.md. Only loopback is ever addressed; the run is bounded in count and
each request times out after 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

if __package__:  # imported as bench.X (the tests)
    from .results import write_section
else:  # run as a script: bench/ is first on sys.path
    from results import write_section

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_load(url: str, clients: int, requests: int, questions: list[str]) -> dict:
    lat: list[float] = []
    errors: list[str] = []

    async def client(c: int, http: httpx.AsyncClient) -> None:
        for r in range(requests):
            q = questions[(c * requests + r) % len(questions)]
            t = time.perf_counter()
            try:
                resp = await http.post(f"{url}/v1/ask", json={"question": q})
                if resp.status_code != 200 or "answer" not in resp.json():
                    errors.append(f"HTTP {resp.status_code}: {resp.text[:120]}")
            except httpx.HTTPError as e:
                errors.append(f"{type(e).__name__}: {e}")
            lat.append(time.perf_counter() - t)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c, http) for c in range(clients)))
        wall = time.perf_counter() - t0
    lat.sort()
    return {
        "requests": len(lat),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "wall_s": wall,
        "rps": len(lat) / wall,
        "p50_ms": 1000 * statistics.median(lat),
        "p95_ms": 1000 * lat[int(0.95 * len(lat)) - 1],
    }


def start_server(port: int, workers: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cqo_assistant.cli", "serve", "--port", str(port)]
    env = {**os.environ, "CQO_RATE_LIMIT_PER_MIN": "0"}  # measuring capacity, not the limiter
    proc = subprocess.Popen([*cmd, "--workers", str(workers)], env=env, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def measure(clients: int, requests: int, workers: int) -> dict:
    gold = ROOT / "eval" / "gold.jsonl"
    questions = [json.loads(x)["question"] for x in gold.read_text("utf-8").splitlines() if x]
    port = free_port()
    proc = start_server(port, workers)
    try:
        return asyncio.run(run_load(f"http://127.0.0.1:{port}", clients, requests, questions))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    rows, loads = [], []
    for w in args.workers:
        loads.append(os.getloadavg()[0])  # other work on the machine shifts every figure
        r = measure(args.clients, args.requests, w)
        print(json.dumps({"workers": w, **r}), file=sys.stderr)
        rows.append(
            f"| {w} | {args.clients} × {args.requests} | {r['requests']} | {r['errors']} | "
            f"{r['rps']:.0f} | {r['p50_ms']:.0f} ms | {r['p95_ms']:.0f} ms |"
        )
    body = [
        "",
        f"Made by `python bench/load_http.py` on {time.strftime('%Y-%m-%d')}: `cqo serve` on "
        f"127.0.0.1, POST /v1/ask with the gold questions, {os.cpu_count()} cores, client and "
        "server on the same machine; 1-minute load average before the runs: "
        + ", ".join(f"{x:.1f}" for x in loads)
        + ". Each client sends its next request when the previous one is answered, so with 50 "
        "clients latency is mostly queueing (≈ 50 / throughput).",
        "",
        "| workers | clients × requests | requests | errors | req/s | p50 | p95 |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    print(write_section("## HTTP load", body))


if __name__ == "__main__":
    main()
