"""Bounded HTTP load on loopback: C concurrent clients × R requests to POST /v1/ask.

Run: ``.venv/bin/python bench/load_http.py [--clients 50] [--requests 20] [--workers 1 2]
[--rounds 2]``. Starts ``cqo serve`` on a free 127.0.0.1 port (the built index, CQO_* env as
usual; the answer cache off, CQO_ANSWER_CACHE=0, so every request is computed), sends the gold
questions round-robin with httpx, stops the server, and rewrites the "## HTTP load" section of
bench/RESULTS.md. The worker counts alternate, in ABBA order over the rounds (1, 2, 2, 1, …),
so load from other work falls on each alike.

``--cache``: the answer cache instead, rewriting the "## Answer cache" section: the same
request stream (``--mix zipf``: the gold questions drawn with Zipf-distributed popularity, see
``zipf_stream``; ``--mix twice``: each asked twice, see ``twice_stream``)
against one worker with the cache off and on, alternating, with the hit rate read from
/healthz; and the in-process latency of a cache hit (``AnswerCache.ask``, no HTTP).

Only loopback is ever addressed; the run is bounded in count and each request times out after
30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
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
            q = questions[(r * clients + c) % len(questions)]  # in step: the stream's order
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


def start_server(port: int, workers: int, cache: int = 0) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cqo_assistant.cli", "serve", "--port", str(port)]
    env = {**os.environ, "CQO_RATE_LIMIT_PER_MIN": "0"}  # measuring capacity, not the limiter
    env["CQO_ANSWER_CACHE"] = str(cache)
    proc = subprocess.Popen([*cmd, "--workers", str(workers)], env=env, stderr=subprocess.DEVNULL)
    return wait_up(proc, port, 300)


def wait_up(
    proc: subprocess.Popen, port: int, tries: int, log: Path | None = None
) -> subprocess.Popen:
    """``proc`` once its /healthz answers 200 (``tries`` × about 0.1 s), else killed."""
    for _ in range(tries):
        if proc.poll() is not None:
            tail = log.read_text()[-800:] if log else ""
            raise RuntimeError(f"cqo serve exited {tail}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("cqo serve did not start")


def gold_questions() -> list[str]:
    gold = ROOT / "eval" / "gold.jsonl"
    return [json.loads(x)["question"] for x in gold.read_text("utf-8").splitlines() if x]


def measure(
    clients: int, requests: int, workers: int, cache: int = 0, questions: list[str] | None = None
) -> dict:
    """One server run. ``questions``: the stream, the clients taking its items in turn (client c
    sends items c, c+C, c+2C, …; the gold questions round-robin by default). With the cache on,
    its /healthz counters."""
    questions = questions or gold_questions()
    port = free_port()
    proc = start_server(port, workers, cache)
    url = f"http://127.0.0.1:{port}"
    try:
        before = httpx.get(f"{url}/healthz").json()["answer_cache"]
        server0, client0 = cpu_seconds(proc.pid), time.process_time()
        out = asyncio.run(run_load(url, clients, requests, questions))
        server1, client1 = cpu_seconds(proc.pid), time.process_time()
        after = httpx.get(f"{url}/healthz").json()["answer_cache"]
        out["server_cpu_ms"] = 1000 * (server1 - server0) / out["requests"]
        out["client_cpu_ms"] = 1000 * (client1 - client0) / out["requests"]
        out["hits"] = after["hits"] - before["hits"]
        out["misses"] = after["misses"] - before["misses"]
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live descendants (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(k)) for k in kids)


def zipf_stream(questions: list[str], n: int, s: float = 1.0, seed: int = 0) -> list[str]:
    """``n`` questions drawn (seeded) from the gold questions with Zipf popularity: the
    question of rank r (a seeded shuffle decides the ranks) is asked with weight 1/r^s — a few
    questions very often, most rarely, as a help desk's traffic usually runs."""
    rng = random.Random(seed)
    ranked = questions[:]
    rng.shuffle(ranked)
    weights = [1 / (r**s) for r in range(1, len(ranked) + 1)]
    return rng.choices(ranked, weights, k=n)


def twice_stream(questions: list[str], n: int, seed: int = 0) -> list[str]:
    """Every gold question asked twice: all in a seeded random order, then all again in
    another, cut to ``n``. Hits are at most half; the retriever's own small caches (256 recent
    rankings) cannot hold a pass, the answer cache (1000) can."""
    rng = random.Random(seed)
    first, second = questions[:], questions[:]
    rng.shuffle(first)
    rng.shuffle(second)
    return (first + second)[:n]


def hit_latency(questions: list[str]) -> dict:
    """In-process: ``AnswerCache.ask`` for questions already in the cache (no HTTP)."""
    from cqo_assistant import Assistant
    from cqo_assistant.answer_cache import AnswerCache

    assistant = Assistant.load()
    cache = AnswerCache(len(questions))
    for q in questions:
        cache.ask(assistant, q)
    lat = []
    for _ in range(3):
        for q in questions:
            t = time.perf_counter()
            cache.ask(assistant, q)
            lat.append(time.perf_counter() - t)
    miss = []
    for q in questions[:100]:
        t = time.perf_counter()
        assistant.ask(q)
        miss.append(time.perf_counter() - t)
    lat.sort()
    return {
        "hits": len(lat),
        "p50_us": 1e6 * statistics.median(lat),
        "p95_us": 1e6 * lat[int(0.95 * len(lat)) - 1],
        "max_us": 1e6 * lat[-1],
        "ask_p50_ms": 1000 * statistics.median(miss),
    }


def _row(label: str, clients: int, requests: int, r: dict) -> str:
    return (
        f"| {label} | {clients} × {requests} | {r['requests']} | {r['errors']} | "
        f"{r['rps']:.1f} | {r['p50_ms']:.0f} ms | {r['p95_ms']:.0f} ms | "
        f"{r['server_cpu_ms']:.1f} ms | {r['client_cpu_ms']:.1f} ms |"
    )


HEAD = "| requests | errors | req/s | p50 | p95 | server CPU / req | client CPU / req |"
RULE = "|---|---|---|---|---|---|---|---|---|"


def _machine(loads: list[float]) -> str:
    return (
        f"{os.cpu_count()} cores, client and server on the same machine; 1-minute load average "
        "before each run: " + ", ".join(f"{x:.1f}" for x in loads)
    )


def workers_section(clients: int, requests: int, workers: list[int], rounds: int) -> list[str]:
    order = [w for i in range(rounds) for w in (workers if i % 2 == 0 else workers[::-1])]
    rows, loads, rps = [], [], {w: [] for w in workers}
    for w in order:
        loads.append(os.getloadavg()[0])  # other work on the machine shifts every figure
        r = measure(clients, requests, w)
        print(json.dumps({"workers": w, **r}), file=sys.stderr)
        rps[w].append(r["rps"])
        rows.append(_row(str(w), clients, requests, r))
    totals = {w: sum(v) / len(v) for w, v in rps.items()}
    ratio = [
        f"{w} workers / {workers[0]}: {totals[w] / totals[workers[0]]:.2f}×" for w in workers[1:]
    ]
    return [
        "",
        f"Made by `python bench/load_http.py --clients {clients} --requests {requests} "
        f"--workers {' '.join(map(str, workers))} --rounds {rounds}` on "
        f"{time.strftime('%Y-%m-%d')}: `cqo serve` on 127.0.0.1, answer cache off, POST /v1/ask "
        f"with the gold questions, runs in the order {order}; {_machine(loads)}. Engine "
        f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS') or 'cores / workers'}. "
        "Each client sends its next request when the previous one is answered, so with "
        f"{clients} clients latency is mostly queueing (≈ {clients} / throughput).",
        "",
        f"| workers | clients × requests {HEAD}",
        RULE,
        *rows,
        "",
        "Mean throughput ratio, same run: " + "; ".join(ratio) + ". CPU / req: CPU seconds "
        "(user + system) of the server's processes, or of the load client, over the run's "
        f"requests; {os.cpu_count()} cores at full use allow at most {os.cpu_count()} s of CPU "
        "a second for server and client together.",
        "",
    ]


MIXES = {
    "zipf": "the {q} gold questions drawn (seed 0) with Zipf popularity, weight 1/rank (s = 1; "
    "ranks by a seeded shuffle)",
    "twice": "each of the {q} gold questions asked twice: all in a seeded random order, then "
    "all again in another (cut to the request count)",
}


def cache_section(clients: int, requests: int, rounds: int, size: int, mix: str) -> list[str]:
    questions = gold_questions()
    make = zipf_stream if mix == "zipf" else twice_stream
    stream = make(questions, clients * requests)
    distinct = len(set(stream))
    rows, loads, rps, rates = [], [], {0: [], size: []}, []
    for i in range(rounds):
        for c in (0, size) if i % 2 == 0 else (size, 0):
            loads.append(os.getloadavg()[0])
            r = measure(clients, requests, 1, cache=c, questions=stream)
            print(json.dumps({"cache": c, **r}), file=sys.stderr)
            rps[c].append(r["rps"])
            label = "off" if not c else f"on ({c})"
            if c:
                rate = r["hits"] / max(1, r["hits"] + r["misses"])
                rates.append(rate)
                label += f", hit rate {100 * rate:.1f} %"
            rows.append(_row(label, clients, requests, r))
    gain = (sum(rps[size]) / len(rps[size])) / (sum(rps[0]) / len(rps[0]))
    lat = hit_latency(questions)
    print(json.dumps(lat), file=sys.stderr)
    return [
        "",
        f"Made by `python bench/load_http.py --cache --mix {mix} --clients {clients} --requests "
        f"{requests} --rounds {rounds}` on {time.strftime('%Y-%m-%d')}: one `cqo serve` worker on "
        f"127.0.0.1, the same stream of {len(stream)} POST /v1/ask with the cache off "
        f"(CQO_ANSWER_CACHE=0) and on (CQO_ANSWER_CACHE={size}), alternating; {_machine(loads)}.",
        "",
        f"Repeat mix ({mix}): {MIXES[mix].format(q=len(questions))}; the clients take the "
        f"stream's requests in turn. {distinct} distinct questions in the "
        f"{len(stream)} requests, so at best {100 * (1 - distinct / len(stream)):.1f} % can be "
        "hits (each distinct question is computed once). Hit rate from /healthz's counters.",
        "",
        f"| cache | clients × requests {HEAD}",
        RULE,
        *rows,
        "",
        f"Throughput gain with the cache, mean of the runs: {gain:.2f}×.",
        "",
        f"Cache hit in-process (`AnswerCache.ask` on a cached question, {lat['hits']} hits over "
        f"the gold questions): p50 {lat['p50_us']:.0f} µs, p95 {lat['p95_us']:.0f} µs, max "
        f"{lat['max_us']:.0f} µs; computing an answer (`Assistant.ask`, first 100 gold "
        f"questions): p50 {lat['ask_p50_ms']:.1f} ms.",
        "",
    ]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=2, help="ABBA: each setting runs this often")
    p.add_argument("--cache", action="store_true", help="measure the answer cache instead")
    p.add_argument("--cache-size", type=int, default=1000)
    p.add_argument("--mix", choices=sorted(MIXES), default="zipf", help="repeat mix (--cache)")
    p.add_argument("--section", help="heading to rewrite in RESULTS.md (default by mode)")
    args = p.parse_args()
    if args.cache:
        body = cache_section(args.clients, args.requests, args.rounds, args.cache_size, args.mix)
        print(write_section(args.section or "## Answer cache", body))
    else:
        body = workers_section(args.clients, args.requests, args.workers, args.rounds)
        print(write_section(args.section or "## HTTP load", body))


if __name__ == "__main__":
    main()
