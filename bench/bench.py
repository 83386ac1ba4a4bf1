"""Core benchmark: index build time, cold start, warm query latency, peak RSS.

Run: ``make bench`` (or ``.venv/bin/python bench/bench.py``). Measures in one run on this
machine and rewrites the "## Core" section of bench/RESULTS.md (other sections are kept).
Targets (issue 3): warm p95 ≤ 30 ms, cold start ≤ 3 s once the index exists, RSS ≤ 600 MB.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__:  # imported as bench.X (the tests)
    from .results import write_section
else:  # run as a script: bench/ is first on sys.path
    from results import write_section

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
t0 = float(sys.argv[1])
from cqo_assistant import Assistant
a = Assistant.load()
a.ask("首席质量官需要什么学历？")
first = time.time() - t0
qs = [json.loads(x)["question"] for x in open(sys.argv[2], encoding="utf-8") if x.strip()]
lat = []
for _ in range(2):
    for q in qs:
        s = time.perf_counter(); a.ask(q); lat.append(time.perf_counter() - s)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"cold": first, "lat": lat, "rss_mb": rss, "n": len(qs)}))
"""


def main() -> None:
    env = {**os.environ, "CQO_INDEX_DIR": tempfile.mkdtemp(prefix="cqo-bench-") + "/index"}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cqo_assistant.cli", "index", "--rebuild"],
                   env=env, check=True, capture_output=True)  # fmt: skip
    build = time.perf_counter() - t
    colds, runs = [], []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, repr(time.time()), str(ROOT / "eval" / "gold.jsonl")],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        colds.append(r["cold"])
        runs.append(r)
        print(f"run {len(runs)}: cold {r['cold']:.2f} s", file=sys.stderr)
    lat = sorted(x * 1000 for x in runs[-1]["lat"])
    p50 = statistics.median(lat)
    p95 = lat[int(0.95 * len(lat)) - 1]
    rss = max(r["rss_mb"] for r in runs)
    cold = statistics.median(colds)
    rows = [
        ("index build (`cqo index --rebuild`, process wall time)", f"{build:.2f} s", "—"),
        ("cold start: process start → first answer (median of 3)", f"{cold:.2f} s", "≤ 3 s"),
        (f"warm query p50 (`Assistant.ask`, {len(lat)} asks)", f"{p50:.1f} ms", "—"),
        (f"warm query p95 (`Assistant.ask`, {len(lat)} asks)", f"{p95:.1f} ms", "≤ 30 ms"),
        ("peak RSS of the answering process", f"{rss:.0f} MB", "≤ 600 MB"),
    ]
    body = [
        "",
        f"Made by `python bench/bench.py` on {time.strftime('%Y-%m-%d')}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {runs[-1]['n']} gold questions asked twice.",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
    ]
    print(write_section("## Core", body))


if __name__ == "__main__":
    main()
