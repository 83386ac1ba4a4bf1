"""WeChat burst: N users' messages at once against ``cqo serve --workers W`` sharing one Redis,
with the asynchronous reply on (an app secret; the customer-service API is the loopback
stand-in of the tests, tests/wechat_api_standin.py).

Run: ``PYTHONPATH=$PWD .venv/bin/python bench/wechat_burst.py [--users 200] [--workers 2]
[--home DIR] [--write]``. Starts a ``redis-server`` on a free loopback port (nothing saved), the
stand-in, and ``cqo serve`` with ``CQO_REDIS_URL``, the WeChat token, AppID and AppSecret and
``CQO_WECHAT_API_BASE`` pointed at the stand-in (rate limits off: every user comes from
127.0.0.1). Then every user sends one text message (a gold question, each user another) at the
same moment, as WeChat would deliver it: a delivery not answered within 5 s is dropped and the
message delivered again, three deliveries at most. A 200 reply ends a message's deliveries,
whether it carries the answer (passive) or says "success" (the answer then comes by the API).

Reported per message: answered on the first delivery directly (passive) or by the asynchronous
path (first delivery "success" and the stand-in received the send), answered only on a
re-delivery, lost (no answer by either way), and how often it was computed (Redis's
``cqo:msg:<key>:computed``, one per stored answer, over every worker) and sent by the API (the
stand-in's records). ``--write`` rewrites the "## WeChat burst, W workers + Redis" section of
bench/RESULTS.md. Only loopback is addressed; every delivery times out after 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: the stand-in lives in tests/

from cqo_assistant.http.bots import wechat_signature  # noqa: E402
from cqo_assistant.settings import Settings  # noqa: E402
from cqo_assistant.wechat_bot import SLOW, TOO_FAST  # noqa: E402
from tests.http_helpers import launch_redis  # noqa: E402
from tests.wechat_api_standin import APP_SECRET, APPID, StandIn, standin  # noqa: E402

if __package__:  # imported as bench.X (the tests)
    from .load_http import free_port, gold_questions, wait_up
    from .results import write_section
else:  # run as a script: bench/ is first on sys.path
    from load_http import free_port, gold_questions, wait_up
    from results import write_section

TOKEN = "burst-token"
WECHAT_TIMEOUT = 5.0  # WeChat hangs up after 5 s and delivers again
DELIVERIES = 3
CS_SEND = "/cgi-bin/message/custom/send"
CONTENT = re.compile(r"<Content><!\[CDATA\[(.*?)\]\]></Content>", re.S)


def start_redis(d: Path) -> tuple[subprocess.Popen, str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server not found: apt-get install redis-server")
    return launch_redis(exe, d, free_port())


def start_server(port: int, workers: int, home: Path, redis_url: str, api: str, log: Path):
    env = {
        **os.environ,
        "CQO_HOME": str(home),
        "CQO_REDIS_URL": redis_url,
        "CQO_WECHAT_TOKEN": TOKEN,
        "CQO_WECHAT_APPID": APPID,
        "CQO_WECHAT_APP_SECRET": APP_SECRET,
        "CQO_WECHAT_API_BASE": api,
        "CQO_RATE_LIMIT_PER_MIN": "0",  # all users come from 127.0.0.1
    }
    cmd = [sys.executable, "-m", "cqo_assistant.cli", "serve", "--port", str(port)]
    with log.open("wb") as err:
        proc = subprocess.Popen([*cmd, "--workers", str(workers)], env=env, stderr=err)
    return wait_up(proc, port, 1200, log)


def message_xml(user: str, question: str, msg_id: int, created: int) -> str:
    return (
        f"<xml><ToUserName><![CDATA[gh_cqo]]></ToUserName>"
        f"<FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>{created}</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{question}]]></Content>"
        f"<MsgId>{msg_id}</MsgId></xml>"
    )


async def deliver_all(url: str, messages: list[dict[str, Any]]) -> None:
    """Every message at once; each delivered again when a delivery gets no 200 within 5 s
    (from sending the request to the whole reply, connecting included)."""

    async def one(m: dict[str, Any], http: httpx.AsyncClient) -> None:
        body = message_xml(m["user"], m["question"], m["msg_id"], m["created"])
        for attempt in range(1, DELIVERIES + 1):
            ts, nonce = str(int(time.time())), os.urandom(6).hex()
            q = {"signature": wechat_signature(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce}
            t = time.perf_counter()
            try:  # 5 s in all, as WeChat counts (httpx's timeout is per connect / read / write)
                r = await asyncio.wait_for(
                    http.post(f"{url}/wechat", params=q, content=body.encode()), WECHAT_TIMEOUT
                )
            except (TimeoutError, httpx.TimeoutException):
                m["deliveries"].append({"attempt": attempt, "result": "timeout"})
                continue
            except httpx.HTTPError as e:
                m["deliveries"].append({"attempt": attempt, "result": type(e).__name__})
                continue
            ms = 1000 * (time.perf_counter() - t)
            if r.status_code != 200:
                m["deliveries"].append({"attempt": attempt, "result": f"HTTP {r.status_code}"})
                continue
            if r.text == "success":
                result = "success"
            else:
                found = CONTENT.search(r.text)
                text = found.group(1) if found else ""
                result = {SLOW: "slow", TOO_FAST: "too_fast", "": "empty"}.get(text, "passive")
            m["deliveries"].append({"attempt": attempt, "result": result, "ms": ms})
            return  # a 200 ends WeChat's deliveries of the message

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(WECHAT_TIMEOUT)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
        await asyncio.gather(*(one(m, http) for m in messages))


def wait_for_sends(api: StandIn, users: set[str], settle: float) -> None:
    """Until every user whose message got "success" has had a send, or ``settle`` seconds."""
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if users <= {b["touser"] for b in api.delivered(CS_SEND)}:
            return
        time.sleep(0.1)


def classify(m: dict[str, Any], sends: int) -> str:
    """passive / async on the first delivery, retry (answered only on a later one), lost."""
    last = m["deliveries"][-1] if m["deliveries"] else {"result": "none"}
    answered = last["result"] == "passive" or (last["result"] == "success" and sends > 0)
    if not answered:
        return "lost"
    if last["attempt"] > 1:
        return "retry"
    return "passive" if last["result"] == "passive" else "async"


def burst(
    users: int = 200, workers: int = 2, home: Path | None = None, settle: float = 60.0
) -> dict[str, Any]:
    """One run (see the module's docstring): the counts, per message and in all."""
    import redis

    home = home or Path(os.environ.get("CQO_HOME") or ROOT)
    questions = gold_questions()
    with tempfile.TemporaryDirectory(prefix="cqo-burst-") as tmp, standin() as api:
        d = Path(tmp)
        rproc, redis_url = start_redis(d)
        port = free_port()
        sproc = None
        try:
            sproc = start_server(port, workers, home, redis_url, api.url, d / "serve.err")
            url = f"http://127.0.0.1:{port}"
            base = 7_000_000_000 + int(time.time()) % 1_000_000 * 1000
            created = int(time.time())
            messages = [
                {"user": f"oBurst{u:05d}", "question": questions[u % len(questions)],
                 "msg_id": base + u, "created": created, "deliveries": []}
                for u in range(users)
            ]  # fmt: skip
            load_before = os.getloadavg()[0]
            t0 = time.perf_counter()
            asyncio.run(deliver_all(url, messages))
            wall = time.perf_counter() - t0
            waiting = {m["user"] for m in messages if m["deliveries"][-1]["result"] == "success"}
            wait_for_sends(api, waiting, settle)
            time.sleep(1.0)  # a second send, if any, would come now
            load_after = os.getloadavg()[0]
            r = redis.Redis.from_url(redis_url, decode_responses=True)
            computed = r.mget([f"cqo:msg:msg:{m['msg_id']}:computed" for m in messages])
            counted = r.mget([f"cqo:msg:msg:{m['msg_id']}:n" for m in messages])
        finally:
            if sproc is not None:
                sproc.terminate()
                sproc.wait(timeout=60)
            rproc.terminate()
            rproc.wait(timeout=10)
        sends = Counter(b["touser"] for b in api.delivered(CS_SEND))
        tried = Counter(s.body["touser"] for s in api.seen(CS_SEND) if s.body)
    kinds: Counter[str] = Counter()
    for m, c, n in zip(messages, computed, counted, strict=True):
        m["sends"], m["computed"], m["counted"] = sends[m["user"]], int(c or 0), int(n or 0)
        m["kind"] = classify(m, m["sends"])
        kinds[m["kind"]] += 1
    first_ms = sorted(
        m["deliveries"][0]["ms"] for m in messages if m["deliveries"][0]["result"] != "timeout"
    )
    return {
        "users": users,
        "workers": workers,
        "wall_s": wall,
        "load_before": load_before,
        "load_after": load_after,
        "kinds": {k: kinds[k] for k in ("passive", "async", "retry", "lost")},
        "deliveries": Counter(len(m["deliveries"]) for m in messages),
        "first_results": Counter(m["deliveries"][0]["result"] for m in messages),
        "computed": Counter(m["computed"] for m in messages),
        "sends": Counter(m["sends"] for m in messages),
        "send_attempts": sum(tried.values()),
        "passive_and_sent": sum(
            1 for m in messages if m["sends"] and m["deliveries"][-1]["result"] == "passive"
        ),
        "first_p50_ms": statistics.median(first_ms) if first_ms else None,
        "first_max_ms": first_ms[-1] if first_ms else None,
        "messages": messages,
    }


def report(out: dict[str, Any], command: str) -> list[str]:
    k, n = out["kinds"], out["users"]

    def pct(x: int) -> str:
        return f"{x} ({100 * x / n:.0f} %)"

    def hist(c: Counter) -> str:
        return ", ".join(f"{key}: {c[key]}" for key in sorted(c))

    return [
        "",
        f"Made by `{command}` on {time.strftime('%Y-%m-%d')}: `cqo serve --workers "
        f"{out['workers']}` on 127.0.0.1 with `CQO_REDIS_URL` (a redis-server on loopback), the "
        "WeChat token, AppID and AppSecret, `CQO_WECHAT_API_BASE` = the loopback stand-in "
        "(tests/wechat_api_standin.py), async deadline "
        f"{os.environ.get('CQO_BOT_ASYNC_DEADLINE') or Settings.bot_async_deadline} s"
        f"{'' if os.environ.get('CQO_BOT_ASYNC_DEADLINE') else ' (default)'}, rate limits off. "
        f"{n} users each send one gold question at the same moment; a delivery with no 200 "
        "reply within 5 s (in all, connecting included) is delivered again, 3 deliveries at "
        "most. 1-minute load average "
        f"before / after: {out['load_before']:.2f} / {out['load_after']:.2f}; burst wall time "
        f"{out['wall_s']:.1f} s.",
        "",
        "| outcome | messages |",
        "|---|---|",
        f"| answered on the 1st delivery, directly (passive reply) | {pct(k['passive'])} |",
        f'| answered on the 1st delivery by the async path ("success" + API send) '
        f"| {pct(k['async'])} |",
        f"| answered only on a re-delivery | {pct(k['retry'])} |",
        f"| lost | {pct(k['lost'])} |",
        f"| computed more than once | {sum(v for c, v in out['computed'].items() if c > 1)} |",
        "",
        f"- first delivery's reply: {hist(out['first_results'])}; its latency p50 "
        f"{out['first_p50_ms']:.0f} ms, max {out['first_max_ms']:.0f} ms",
        f"- deliveries per message: {hist(out['deliveries'])}",
        f"- computations per message (Redis `cqo:msg:<key>:computed`): {hist(out['computed'])}",
        f"- API sends accepted per message (stand-in): {hist(out['sends'])}; send requests in "
        f"all {out['send_attempts']}; answered both passively and by the API: "
        f"{out['passive_and_sent']}",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--home", type=Path, help="project home with a built index (CQO_HOME)")
    ap.add_argument("--write", action="store_true", help="rewrite the section of RESULTS.md")
    args = ap.parse_args()
    out = burst(args.users, args.workers, args.home)
    command = "python bench/wechat_burst.py " + " ".join(sys.argv[1:])
    lines = report(out, command.strip())
    heading = f"## WeChat burst, {args.workers} workers + Redis"
    print("\n".join([heading, *lines]))
    if args.write:
        write_section(heading, lines)


if __name__ == "__main__":
    main()
