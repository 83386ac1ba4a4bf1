"""Core benchmark: index build time, cold start, warm query latency, peak RSS — for this code
and, side by side in the same run, for a baseline commit.

Run: ``make bench`` (or ``.venv/bin/python bench/bench.py [--baseline REF]``). The baseline
(default: 07f6338, the code before the question bank) is checked out into a temporary git
worktree and measured with the same interpreter; the two codes' answering processes alternate
(new, old, new, old, …) so machine load falls on both alike. Rewrites the "## Core" section of
bench/RESULTS.md (other sections are kept).
Targets: warm p95 ≤ 2× the baseline's, cold start ≤ 3 s, index build ≤ 90 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
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
BASELINE = "07f6338"

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
dialogs = [json.loads(x) for x in open(sys.argv[3], encoding="utf-8") if x.strip()]
dialogs = [d for d in dialogs if d["split"] == "test"][:60]
fu = []  # follow-ups, each asked after the dialog's earlier questions
try:
    for d in dialogs:
        history = []
        for t in d["turns"]:
            s = time.perf_counter(); a.ask(t["q"], history); took = time.perf_counter() - s
            if history:
                fu.append(took)
            history.append(t["q"])
except TypeError:  # a code whose ask() takes no history
    fu = []
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"cold": first, "lat": lat, "fu": fu, "rss_mb": rss, "n": len(qs)}))
"""


def _build(code: Path, env: dict[str, str]) -> float:
    """Wall time of a full ``cqo index --rebuild`` of ``code``'s corpus, with no cached
    embeddings (each code's processes get a temp dir of their own, so the bank's per-machine
    cache starts empty and the machine's own is left alone)."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cqo_assistant.cli", "index", "--rebuild"],
                   env=env, cwd=code, check=True, capture_output=True)  # fmt: skip
    return time.perf_counter() - t


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _answer_run(code: Path, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, repr(time.time()), str(ROOT / "eval" / "gold.jsonl"),
         str(ROOT / "eval" / "dialogs.jsonl")],
        env=env, cwd=code, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _summary(runs: list[dict], build: float) -> dict[str, float]:
    lat = sorted(x * 1000 for r in runs for x in r["lat"])
    fu = sorted(x * 1000 for r in runs for x in r.get("fu", []))
    return {
        "fu_p50": statistics.median(fu) if fu else float("nan"),
        "fu_p95": fu[int(0.95 * len(fu)) - 1] if fu else float("nan"),
        "build": build,
        "cold": statistics.median(r["cold"] for r in runs),
        "p50": statistics.median(lat),
        "p95": lat[int(0.95 * len(lat)) - 1],
        "rss": max(r["rss_mb"] for r in runs),
        "asks": len(lat),
        "n": runs[-1]["n"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default=BASELINE, help="commit to compare with ('' for none)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cqo-bench-"))
    codes = {"this code": ROOT}
    if args.baseline:
        base = work / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base),
                        args.baseline], check=True, capture_output=True)  # fmt: skip
        codes[f"baseline {args.baseline}"] = base
    try:
        envs = {
            name: {
                **os.environ,
                "CQO_HOME": str(code),
                "CQO_INDEX_DIR": str(work / f"index-{i}"),
                "CQO_DATA_DIR": str(work / f"data-{i}"),
                "PYTHONPATH": str(code),
                "TMPDIR": str(_mkdir(work / f"tmp-{i}")),
            }
            for i, (name, code) in enumerate(codes.items())
        }
        builds = {name: _build(code, envs[name]) for name, code in codes.items()}
        runs: dict[str, list[dict]] = {name: [] for name in codes}
        for k in range(args.rounds):
            for name, code in codes.items():
                runs[name].append(_answer_run(code, envs[name]))
                print(f"round {k + 1} {name}: cold {runs[name][-1]['cold']:.2f} s", file=sys.stderr)
        res = {name: _summary(runs[name], builds[name]) for name in codes}
    finally:
        if args.baseline:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(work / "baseline")], capture_output=True)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)
    names = list(codes)
    load = os.getloadavg()[0]
    header = "| measure | " + " | ".join(names) + " | target |"
    rows = [
        ("index build (`cqo index --rebuild`, no cached embeddings)", "build", "{:.1f} s",
         "≤ 90 s"),
        ("cold start: process start → first answer (median)", "cold", "{:.2f} s", "≤ 3 s"),
        ("warm query p50 (`Assistant.ask`)", "p50", "{:.1f} ms", "—"),
        ("warm query p95 (`Assistant.ask`)", "p95", "{:.1f} ms", "≤ 2× baseline"),
        ("warm follow-up p50 (`Assistant.ask(q, history)`)", "fu_p50", "{:.1f} ms", "—"),
        ("warm follow-up p95", "fu_p95", "{:.1f} ms", "—"),
        ("peak RSS of the answering process", "rss", "{:.0f} MB", "—"),
    ]  # fmt: skip
    body = [
        "",
        f"Made by `python bench/bench.py` on {time.strftime('%Y-%m-%d')}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {res[names[0]]['n']} gold questions asked twice "
        f"per process, then the follow-ups of the first 60 test dialogs (nan: the code takes no "
        f"history); {args.rounds} processes per code, alternating (1-minute load average at "
        f"the end: {load:.2f}).",
        "",
        header,
        "|---" * (len(names) + 2) + "|",
        *[
            f"| {label} | " + " | ".join(fmt.format(res[n][key]) for n in names) + f" | {t} |"
            for label, key, fmt, t in rows
        ],
    ]
    if len(names) == 2:
        ratio = res[names[0]]["p95"] / res[names[1]]["p95"]
        body += ["", f"Warm p95 ratio, this code / baseline, same run: {ratio:.2f}×."]
    body.append("")
    print(write_section("## Core", body))


if __name__ == "__main__":
    main()
