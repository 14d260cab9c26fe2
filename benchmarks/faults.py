"""Fault benchmark: does a run survive what production does to it, and never lie about its state?

Everything is on 127.0.0.1: a scripted OpenAI-compatible server in this process (tests/fake_openai.py)
answers the real `harness run` CLI in subprocesses, against SQLite and (when reachable) PostgreSQL.
It counts, it does not time. Bounded: a fixed number of kills and faults, every subprocess has a
timeout, and it stops by itself.

1. kill -9 at random points, then the same command again, until done: samples lost, duplicated,
   prompts recomputed (asked more than once), whether the killed run showed as `interrupted`, and
   whether the metrics equal an uninterrupted run's;
2. server faults (500, 502, 503, 429 + Retry-After, dropped connections, a hang past the timeout):
   how many the run survived;
3. concurrent writers: the same command three times at once (one works, the others refuse; prompts
   asked twice) and two different commands on one store at once (both complete);
4. a run failed after its retries, rerun with other transport settings (max_retries,
   max_concurrency, timeout_s): same run, prompts asked twice.

    python benchmarks/faults.py [--samples 120] [--kills 6] [--pg-kills 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.errors import ConfigError  # noqa: E402
from harness.store import Store  # noqa: E402
from tests.fake_openai import FakeOpenAIServer, Scripted  # noqa: E402

TIMEOUT_S = 300


def write_data(folder: Path, n: int) -> Path:
    path = folder / "rag.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            context = f"Item {i} was registered in {1900 + i % 100} in the city of Town{i}."
            answers = [str(1900 + i % 100)] if i % 3 else []
            question = f"In which year was item {i} registered?" if i % 3 else f"Who registered item {i}?"
            fh.write(json.dumps({"id": f"q{i:04d}", "question": question, "context": context, "answers": answers}) + "\n")
    return path


class Bench:
    def __init__(self, data: Path, server: FakeOpenAIServer) -> None:
        self.data = data
        self.server = server

    def args(self, db: str, *extra: str) -> list[str]:
        return [sys.executable, "-m", "harness", "run", "rag-extraction", "--backend", "openai", "--model", "served",
                "--base-url", self.server.url, "--data", str(self.data), "--db", db, "--batch-size", "4",
                "--no-progress", "--json", *extra]

    def start(self, db: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        environment = os.environ | {"PYTHONPATH": str(REPO)} | (env or {})
        return subprocess.Popen(self.args(db, *extra), env=environment, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def run(self, db: str, *extra: str) -> tuple[int, dict[str, Any] | None, str]:
        proc = self.start(db, *extra)
        out, err = proc.communicate(timeout=TIMEOUT_S)
        result = json.loads(out)["runs"][0] if proc.returncode == 0 else None
        return proc.returncode, result, err

    def asked(self) -> Counter[str]:
        return Counter(json.dumps(s["payload"].get("messages"), sort_keys=True) for s in self.server.seen)


def store_state(db: str) -> tuple[list[dict[str, Any]], dict[str, set[str]]]:
    """Runs (newest first, with the status readers see) and the sample ids stored per run."""
    try:
        store = Store(db, read_only=True)
    except ConfigError:
        return [], {}
    try:
        runs = store.list_runs()
        return runs, {r["id"]: store.stored_sample_ids(r["id"]) for r in runs}
    finally:
        store.close()


def cached_prompts(db: str) -> set[str]:
    """The prompts whose answers the store holds, keyed like `Bench.asked`."""
    from sqlalchemy import select

    from harness.store import completions

    store = Store(db, read_only=True)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(select(completions.c.request)).scalars().all()
    finally:
        store.close()
    return {json.dumps([{"role": r, "content": c} for r, c in row["messages"]], sort_keys=True) for row in rows}


def sample_rows(db: str, run_id: str) -> int:
    store = Store(db, read_only=True)
    try:
        return store.count_samples(run_id)
    finally:
        store.close()


def slow_server(seconds: float) -> FakeOpenAIServer:
    server = FakeOpenAIServer(answer="unanswerable")
    original = server._ok

    def delayed(path: str, payload: dict[str, Any]) -> dict[str, Any]:
        time.sleep(seconds)
        # a deterministic answer per prompt, so metrics are comparable between runs
        content = json.dumps(payload.get("messages"))
        server.answer = "unanswerable" if zlib.crc32(content.encode()) % 2 else content[-40:]
        return original(path, payload)

    server._ok = delayed  # type: ignore[method-assign]
    server.httpd.handle_error = lambda *_: None  # type: ignore[method-assign] # a client that timed out is expected
    return server


def kills(data: Path, db: str, n_kills: int, rng: random.Random, samples: int) -> dict[str, Any]:
    server = slow_server(0.01)
    bench = Bench(data, server)
    env = {"HARNESS_LEASE_SECONDS": "2"}
    lost = survived = shown_interrupted = 0
    stored_before: set[str] = set()
    try:
        for _ in range(n_kills):
            proc = bench.start(db, "--backend-option", "max_concurrency=2", env=env)
            target = len(stored_before) + rng.randint(1, max(1, samples // (n_kills + 1)))
            deadline = time.monotonic() + TIMEOUT_S
            while proc.poll() is None and time.monotonic() < deadline:
                _, stored = store_state(db)
                if sum(len(s) for s in stored.values()) >= target:
                    time.sleep(rng.uniform(0, 0.3))  # somewhere inside the next batch
                    break
                time.sleep(0.05)
            if proc.poll() is not None:
                break  # it finished first
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            survived += 1
            runs, stored = store_state(db)
            now = set().union(*stored.values()) if stored else set()
            lost += len(stored_before - now)
            stored_before = now
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the 2 s lease lapses: readers must say interrupted
                runs, _ = store_state(db)
                if runs and runs[0]["status"] == "interrupted":
                    shown_interrupted += 1
                    break
                time.sleep(0.2)
        code, result, err = bench.run(db, "--backend-option", "max_concurrency=2")
        if code != 0:
            raise SystemExit(f"final run failed: {err[-2000:]}")
        runs, stored = store_state(db)
        final = stored[result["run_id"]] if result else set()
        lost += len(stored_before - final) + (samples - len(final))
        asked = bench.asked()
    finally:
        server.close()
    clean_server = slow_server(0.0)
    with tempfile.TemporaryDirectory() as folder:
        clean_db = f"sqlite:///{folder}/clean.db"
        code, clean, _ = Bench(data, clean_server).run(clean_db)
    clean_server.close()
    return {
        "kills survived": f"{survived}/{survived}" if result and result["status"] == "complete" else f"0/{survived}",
        "samples lost": lost,
        "samples duplicated": sample_rows(db, result["run_id"]) - len(final) if result else None,
        "runs made": len(runs),
        "prompts recomputed": sum(c - 1 for c in asked.values() if c > 1),
        "prompts answered": len(asked),
        "shown interrupted": f"{shown_interrupted}/{survived}",
        "metrics equal an uninterrupted run": bool(clean and result and clean["metrics"] == result["metrics"]),
    }


def server_faults(data: Path, db: str) -> dict[str, Any]:
    server = slow_server(0.0)
    faults = [Scripted(500, body={"error": "boom"}), Scripted(502, body={"error": "bad gateway"}),
              Scripted(503, body={"error": "overloaded"}), Scripted(429, headers={"Retry-After": "0.05"}, body={"error": "slow"}),
              Scripted(drop=True), Scripted(delay=1.5)]
    script: list[Scripted] = []
    for i, fault in enumerate(faults * 3):
        script += [Scripted()] * (3 + i % 4) + [fault]
    server.script = list(script)
    code, result, err = Bench(data, server).run(
        db, "--backend-option", "timeout_s=0.5", "--backend-option", "backoff_base_s=0.01", "--backend-option", "max_concurrency=4"
    )
    server.close()
    n = len(faults) * 3
    ok = code == 0 and result is not None and result["status"] == "complete"
    return {"server faults survived": f"{n if ok else 0}/{n}" + ("" if ok else f" ({err.strip()[-300:]})")}


def concurrent(data: Path, db: str, other_db_file: str) -> dict[str, Any]:
    server = slow_server(0.01)
    bench = Bench(data, server)
    procs = [bench.start(db, "--backend-option", "max_concurrency=2") for _ in range(3)]
    codes = [p.wait(timeout=TIMEOUT_S) for p in procs]
    refusals = sum("being worked on by another process" in " ".join(p.communicate()[1].split()) for p in procs)
    asked = bench.asked()
    server.close()
    server = slow_server(0.005)
    bench = Bench(data, server)
    different = [bench.start(other_db_file, "--seed", str(i), "--run-name", f"writer-{i}") for i in range(2)]
    other_codes = [p.wait(timeout=TIMEOUT_S) for p in different]
    for p in different:
        p.communicate()
    runs, _ = store_state(other_db_file)
    server.close()
    return {
        "same command x3: exit codes": sorted(codes),
        "same command x3: refused with a message": refusals,
        "same command x3: prompts asked twice": sum(c - 1 for c in asked.values() if c > 1),
        "two different runs, one store: complete": sum(r["status"] == "complete" for r in runs) if other_codes == [0, 0] else 0,
    }


def transport_rerun(data: Path, db: str, samples: int) -> dict[str, Any]:
    server = slow_server(0.0)
    bench = Bench(data, server)
    server.script = [Scripted()] * (samples // 2) + [Scripted(503, body={"error": "overloaded"})] * 4
    code, _, _ = bench.run(db, "--backend-option", "max_retries=0", "--backend-option", "max_concurrency=1")
    runs, _ = store_state(db)
    answered = cached_prompts(db)  # answers the first run kept (a call that failed half way kept none)
    server.seen.clear()
    server.script.clear()
    _, result, err = bench.run(db, "--backend-option", "max_retries=8", "--backend-option", "max_concurrency=16",
                                   "--backend-option", "timeout_s=60")
    after = bench.asked()
    server.close()
    return {
        "first run": f"exit {code}, {runs[0]['status'] if runs else 'no run'}",
        "rerun with max_retries/max_concurrency/timeout_s changed: same run": bool(result and runs and result["run_id"] == runs[0]["id"]),
        "first run: answers kept": len(answered),
        "rerun: prompts asked twice (kept answers asked again)": len(answered & set(after)) + sum(c - 1 for c in after.values() if c > 1),
        "rerun: status": result["status"] if result else f"failed ({err.strip()[-200:]})",
    }


def postgres_url() -> str | None:
    try:
        from tests.conftest import postgres_url as probe

        return probe()
    except Exception:  # no server: the PostgreSQL rows are skipped and say so
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=120)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--pg-kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    opts = parser.parse_args()
    rng = random.Random(opts.seed)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        data = write_data(tmp, opts.samples)
        report["kill -9, SQLite"] = kills(data, f"sqlite:///{tmp / 'kills.db'}", opts.kills, rng, opts.samples)
        base = postgres_url()
        if base and opts.pg_kills:
            from tests.conftest import temporary_postgres_db

            with temporary_postgres_db() as url:
                report["kill -9, PostgreSQL"] = kills(data, url, opts.pg_kills, rng, opts.samples)
        else:
            report["kill -9, PostgreSQL"] = {"skipped": "no PostgreSQL on 127.0.0.1:5432"}
        report["server faults"] = server_faults(data, f"sqlite:///{tmp / 'faults.db'}")
        report["concurrent writers"] = concurrent(data, f"sqlite:///{tmp / 'same.db'}", f"sqlite:///{tmp / 'two.db'}")
        report["changed transport settings"] = transport_rerun(data, f"sqlite:///{tmp / 'transport.db'}", opts.samples)
    for section, rows in report.items():
        print(f"\n{section}")
        for key, value in rows.items():
            print(f"  {key:<62} {value}")


if __name__ == "__main__":
    main()
