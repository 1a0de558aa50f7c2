"""Benchmark: closing the loop (issue 19). What the handling side writes back on transfer orders
becomes training data; does a challenger trained on it beat the champion on tickets never written back?

Splits the tickets (``../shared/datasets/haikou12345/dev.csv``; the shipped corpus
``data/corpus/train.jsonl`` when that is absent or with ``--data``; deterministic seed, stratified by
department) into a champion part (``--champion-share``) and, of the rest, a written-back half W and
a held-out half H. Then, as users would:

1. ``hotline train`` a champion on the champion part; ``hotline promote`` it (first model: ``--force``);
2. ``hotline serve`` it (auth on: the home line 12345's call-taker key and a ``partner@110`` key,
   SQLite file); for each ticket of W: ``POST /v1/route`` (the call-taker's suggestion), then a
   transfer order to the line that handled the ticket (police tickets 12345 → 110, created by the
   call-taker and written back by the 110 partner; the others 110 → 12345, created by the partner
   and written back by the 12345 platform), with the router's department and decision; the
   receiving side accepts, handles and writes back the department that actually handled the
   ticket (its label); the sender closes it;
3. ``hotline export-reviews`` from the server's database: the write-backs come out as labelled,
   masked rows with ``source=write_back``;
4. ``hotline retrain`` on the champion's data + those rows → challenger, compared with the champion
   on H (never written back, never trained on); a control challenger is trained the same way on W's
   raw tickets (no API, no masking), so the loop's cost, if any, shows;
5. ``hotline promote challenger`` with the default policy: the decision is printed.

Every ``hotline`` command runs as a process in a temporary folder (deleted afterwards: the rows hold
real addresses). Prints its command, the commands it ran, and one table. Never prints ticket texts.

    python -m bench.retrain_writebacks [--data PATH] [--seed 13] [--champion-share 0.5] [--limit N] [--keep DIR]
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import httpx

from bench.live_server import hotline_server

ROOT = Path(__file__).resolve().parents[1]
HAIKOU = ROOT.parent / "shared" / "datasets" / "haikou12345" / "dev.csv"
CORPUS = ROOT / "data" / "corpus" / "train.jsonl"
COLUMNS = ("text", "department", "channel")
CT_KEY, PARTNER_KEY = "loop-ct-41b7", "loop-110-e03c"
HOME, PARTNER = "12345", "110"


def read_rows(path: Path) -> list[dict]:
    """Rows as {text, department, channel (110/12345)}: a Haikou CSV (handled_by_police yes → 110) or a corpus JSONL."""
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [{"text": r["text"], "department": r["department"], "channel": str(r["channel"])} for r in rows]
    with open(path, encoding="utf-8-sig", newline="") as f:
        return [{"text": r["text"], "department": r["department"], "channel": "110" if r["handled_by_police"] == "yes" else "12345"}
                for r in csv.DictReader(f)]


def write_rows(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return path


def _split(rows: list[dict], test_size: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Stratified by department where every department has two rows or more, else plain random."""
    from sklearn.model_selection import train_test_split

    labels = [r["department"] for r in rows]
    counts = Counter(labels)
    strat = labels if min(counts.values()) >= 2 and len(counts) <= min(len(rows) * test_size, len(rows) * (1 - test_size)) else None
    return train_test_split(rows, test_size=test_size, random_state=seed, stratify=strat)


def split(rows: list[dict], seed: int, champion_share: float, limit: int | None) -> tuple[list[dict], list[dict], list[dict]]:
    """(champion part, written-back half W, held-out half H); ``limit`` first draws that many rows."""
    if limit and limit < len(rows):
        _, rows = _split(rows, limit / len(rows), seed)
    champion, rest = _split(rows, 1 - champion_share, seed)
    w, h = _split(rest, 0.5, seed)
    return champion, w, h


def run(commands: list[str], work: Path, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    """Run ``hotline *args`` in ``work``; the command line is recorded, its output is not printed."""
    commands.append("hotline " + " ".join(shlex.quote(a) for a in args))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(PYTHONPATH=str(ROOT), HOTLINE_REGISTRY_DIR=str(work / "models"))
    r = subprocess.run([sys.executable, "-m", "serve.cli", *args], cwd=work, env=env, capture_output=True, text=True)
    if r.returncode not in ok:
        sys.exit(f"`{commands[-1]}` failed with exit {r.returncode}:\n{r.stderr[-2000:]}")  # reasons and labels, never texts
    return r


async def write_back_all(url: str, tickets: list[dict], run_id: str, concurrency: int) -> Counter:
    """Route each ticket, send it as a transfer order to the line that handled it, have the receiver
    write back its department, close it. Returns counts (``written back``, ``suggestion differed``,
    and ``failed <step> HTTP <status>`` for anything else)."""
    tally: Counter = Counter()
    keys = {HOME: CT_KEY, PARTNER: PARTNER_KEY}
    queue: asyncio.Queue = asyncio.Queue()
    for i, t in enumerate(tickets):
        queue.put_nowait((i, t))

    async def post(client: httpx.AsyncClient, what: str, key: str, path: str, body: dict, ok=(200,)) -> dict | None:
        r = await client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
        if r.status_code not in ok:
            tally[f"failed {what} HTTP {r.status_code}"] += 1
            return None
        return r.json()

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i, t = queue.get_nowait()
            sender, receiver = (HOME, PARTNER) if t["channel"] == PARTNER else (PARTNER, HOME)
            call_id = f"WB{run_id}-{i}"
            decision = await post(client, "route", CT_KEY, "/v1/route", {"text": t["text"], "call_id": call_id, "received_on": sender})
            if decision is None:
                continue
            order = await post(client, "create", keys[sender], "/v1/transfers", {
                "call_id": call_id, "from_line": sender, "to_line": receiver, "department": decision["department"],
                "urgency": "110_first" if decision["action"] == "110_first" else "normal", "summary": t["text"],
                "decision": {"action": decision["action"], "department": decision["department"], "follow_up": decision.get("follow_up")},
                "model_version": decision["model_version"]}, ok=(201,))
            if order is None:
                continue
            path = f"/v1/transfers/{order['id']}"
            steps = [(receiver, "accept", {}), (receiver, "handle", {}),
                     (receiver, "write_back", {"result": "已办结", "handled_department": t["department"]}), (sender, "close", {})]
            for line, action, body in steps:
                if await post(client, action, keys[line], f"{path}/{action}", body) is None:
                    break
            else:
                tally["written back"] += 1
                tally["suggestion differed"] += decision["department"] != t["department"]

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return tally


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="Haikou CSV or corpus JSONL (default: Haikou dev.csv, else the shipped corpus)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--champion-share", type=float, default=0.5, help="Share of the tickets the champion is trained on")
    ap.add_argument("--limit", type=int, default=None, help="Use a stratified sample of this many tickets (quick runs)")
    ap.add_argument("--concurrency", type=int, default=8, help="Tickets written back at once")
    ap.add_argument("--no-control", action="store_true", help="Skip the control challenger trained on W's raw tickets")
    ap.add_argument("--keep", type=Path, default=None, help="Keep the work folder here (it holds real ticket texts)")
    args = ap.parse_args(argv)
    print("$ " + " ".join(shlex.quote(a) for a in [Path(sys.executable).name, "-m", "bench.retrain_writebacks",
                                                   *(argv if argv is not None else sys.argv[1:])]), flush=True)
    data = args.data or (HAIKOU if HAIKOU.exists() else CORPUS)
    if not data.exists():
        sys.exit(f"{data}: not found")
    champion_rows, w, h = split(read_rows(data), args.seed, args.champion_share, args.limit)
    work = Path(tempfile.mkdtemp(prefix="retrain-writebacks-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    commands: list[str] = []
    db_url = f"sqlite:///{work / 'hotline.db'}"
    try:
        write_rows(work / "champion_data.csv", champion_rows)
        write_rows(work / "written_back_raw.csv", w)
        write_rows(work / "held_out.csv", h)
        ch = ["--channel-column", "channel", "--lenient", "--no-verbose"]
        run(commands, work, "train", "--data", "champion_data.csv", *ch, "--out", "champion")
        run(commands, work, "promote", "champion", "--force")  # the first model: nothing to compare with
        env = {"HOTLINE_DATABASE_URL": db_url, "HOTLINE_REGISTRY_DIR": str(work / "models"), "HOTLINE_HOME_LINE": HOME,
               "HOTLINE_API_KEYS": f"{CT_KEY}:call_taker,{PARTNER_KEY}:partner@{PARTNER}"}
        commands.append(f"hotline serve  # {len(w)} tickets: POST /v1/route, POST /v1/transfers, accept, handle, write_back, close")
        with hotline_server(work / "server", env) as (url, _):
            tally = asyncio.run(write_back_all(url, w, os.urandom(3).hex(), args.concurrency))
        export = run(commands, work, "export-reviews", "--out", "write_backs.jsonl", "--database-url", db_url)
        sources = Counter(json.loads(line)["source"] for line in (work / "write_backs.jsonl").read_text(encoding="utf-8").splitlines() if line.strip())
        common = ["--base-data", "champion_data.csv", "--test-data", "held_out.csv", *ch]
        run(commands, work, "retrain", *common, "--new-data", "write_backs.jsonl", "--out", "challenger")
        if not args.no_control:
            run(commands, work, "retrain", *common, "--new-data", "written_back_raw.csv", "--out", "control")
        pointer = lambda: (work / "models" / "CURRENT").read_text(encoding="utf-8").strip()  # noqa: E731
        before = pointer()
        promote = run(commands, work, "promote", "challenger", ok=(0, 2))
        promoted = pointer() != before
        roles = ["challenger", "control"] if not args.no_control else ["challenger"]
        comparisons = {k: json.loads((work / k / "comparison.json").read_text(encoding="utf-8")) for k in roles}
        train_rows = {k: json.loads((work / k / "metrics.json").read_text(encoding="utf-8"))["train_rows"] for k in ["champion", *roles]}
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    print("\n".join("  " + c for c in commands))
    n110 = sum(t["channel"] == PARTNER for t in w)
    print(f"\ndata: {data.name}, {len(champion_rows) + len(w) + len(h)} tickets (seed {args.seed}): champion part {len(champion_rows)}, "
          f"written back W {len(w)} ({n110} to 110, {len(w) - n110} to 12345), held out H {len(h)}")
    failed = {k: v for k, v in tally.items() if k.startswith("failed")}
    print(f"write-backs: {tally['written back']} of {len(w)} orders written back and closed "
          f"({tally['suggestion differed']} with another department than the router suggested){'; ' + str(failed) if failed else ''}")
    print(f"export: {export.stdout.splitlines()[0]} (sources {dict(sources)})\n")
    fmt = lambda v: "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    print("| model | trained on | train rows | accuracy | macro-F1 | 110 recall | 110 missed | test rows (H) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = [("champion", "champion part", comparisons["challenger"]["champion"]["metrics"]),
            ("challenger", "champion part + write-backs (masked, via the API)", comparisons["challenger"]["challenger"]["metrics"])]
    if "control" in comparisons:
        rows.append(("control", "champion part + W's raw tickets", comparisons["control"]["challenger"]["metrics"]))
    for role, what, m in rows:
        print(f"| {role} | {what} | {train_rows[role]} | {fmt(m['accuracy'])} | {fmt(m['macro_f1'])} | {fmt(m['110_recall'])} | "
              f"{m['missed_110']} of {m['n_110']} | {m['n']} |")
    first = (promote.stdout.strip() or promote.stderr.strip()).splitlines()
    print(f"\npromote challenger (default policy): exit {promote.returncode}: {first[0] if first else ''}; "
          f"{'the challenger is now served' if promoted else 'the champion stays'}")
    return 1 if failed or tally["written back"] == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
