"""Cold start from the shell (issue 16): wall time of ``cqo ask "…"`` — process start to exit,
the answer printed — for this code and, side by side in the same run, a baseline commit.

Run: ``.venv/bin/python bench/cold_start.py [--baseline REF] [--rounds 7]``. The baseline
(default bbd3aa2^, the code when issue 16 was filed and its 4.0 s was measured) is checked out
into a temporary git worktree; each code gets its own index (built first, not timed) and temp
dir, and one untimed ``cqo ask`` (jieba writes its dictionary cache, Python its bytecode, on
the first run). Then the
two codes' runs alternate (new, old, new, old, …) so machine load falls on both alike; the
median is reported. Rewrites the "## Cold start (CLI)" section of bench/RESULTS.md.
Target: ≤ 2 s, or ≤ 0.6 × the baseline where the machine is slower than the one that measured
4.0 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__:
    from .results import write_section
else:
    from results import write_section

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "bbd3aa2^"
QUESTION = "首席质量官需要什么学历？"
CQO = str(Path(sys.executable).parent / "cqo")


def _ask(code: Path, env: dict[str, str]) -> float:
    """One ``cqo ask`` as a user runs it: the console script (``python -m`` would import the
    CLI module twice), the code on PYTHONPATH."""
    t = time.perf_counter()
    subprocess.run([CQO, "ask", QUESTION], env=env, cwd=code, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default=BASELINE)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cqo-cold-"))
    base = work / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base),
                    args.baseline], check=True, capture_output=True)  # fmt: skip
    codes = {"this code": ROOT, f"baseline {args.baseline}": base}
    try:
        envs = {}
        for i, (name, code) in enumerate(codes.items()):
            tmp = work / f"tmp-{i}"
            tmp.mkdir()
            # Python caches bytecode by default (this sandbox turns it off: every run would
            # compile every module again, which no user's machine does)
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            envs[name] = {**env, "CQO_HOME": str(code), "PYTHONPATH": str(code),
                          "CQO_INDEX_DIR": str(work / f"index-{i}"), "TMPDIR": str(tmp),
                          "CQO_DATA_DIR": str(work / f"data-{i}")}  # fmt: skip
            print(f"building the index of {name} …", file=sys.stderr, flush=True)
            subprocess.run([sys.executable, "-m", "cqo_assistant.cli", "index"],
                           env=envs[name], cwd=code, check=True, capture_output=True)  # fmt: skip
            _ask(code, envs[name])  # untimed: jieba's dictionary cache is written once
        times: dict[str, list[float]] = {name: [] for name in codes}
        for k in range(args.rounds):
            for name, code in codes.items():
                times[name].append(_ask(code, envs[name]))
                print(f"round {k + 1} {name}: {times[name][-1]:.2f} s", file=sys.stderr)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)
    names = list(codes)
    med = {n: statistics.median(times[n]) for n in names}
    load = os.getloadavg()[0]
    body = [
        "",
        f"Made by `python bench/cold_start.py --rounds {args.rounds}` on "
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores: wall time of "
        f'`cqo ask "{QUESTION}"` (process start → answer printed → exit; the console script, '
        "bytecode cached as Python does by default), the two codes alternating, "
        f"{args.rounds} runs each after one untimed run (1-minute load average at the end: "
        f"{load:.2f}).",
        "",
        "| code | median | min | max |",
        "|---|---|---|---|",
        *[
            f"| {n} | {med[n]:.2f} s | {min(times[n]):.2f} s | {max(times[n]):.2f} s |"
            for n in names
        ],
        "",
        f"Ratio, this code / baseline, same run: {med[names[0]] / med[names[1]]:.2f} "
        "(target: ≤ 2 s, or ≤ 0.6 where the machine is slower).",
        "",
    ]
    print(write_section("## Cold start (CLI)", body))


if __name__ == "__main__":
    main()
