"""Prompt-log ingest (bad lines give file/line/field errors, nothing half-stored) and alarm delivery by
webhook against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from harness.cli import app
from harness.store import Store, prompt_logs
from harness.types import MetricValue
from monitors.alarms import _due
from monitors.config import AlarmPolicyConfig, WebhookConfig
from monitors.logs import parse_timestamp
from monitors.webhook import post_json

cli = CliRunner()


def flat(text: str) -> str:
    """Rich wraps long lines at the terminal width; compare messages with whitespace collapsed."""
    return " ".join(text.split())

GOOD = '{"ts": "2026-11-20T10:00:00Z", "prompt": "How do I bake bread?", "response": "Knead, rise, bake."}'


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"prompt": "hi"}', "line 2, field 'ts': missing"),
        ('{"ts": null, "prompt": "hi"}', "line 2, field 'ts': missing"),
        ('{"ts": "yesterday", "prompt": "hi"}', "line 2, field 'ts': 'yesterday' is not an ISO-8601 timestamp"),
        ('{"ts": "2026-13-45T10:00:00", "prompt": "hi"}', "line 2, field 'ts': '2026-13-45T10:00:00' is not an ISO-8601"),
        ('{"ts": true, "prompt": "hi"}', "line 2, field 'ts': expected an ISO-8601 string or Unix seconds, got a boolean"),
        ('{"ts": [2026], "prompt": "hi"}', "line 2, field 'ts': expected an ISO-8601 string or Unix seconds, got list"),
        ('{"ts": 1e300, "prompt": "hi"}', "line 2, field 'ts': Unix time 1e+300 is out of range"),
        ('{"ts": "2026-11-20T10:00:00Z"}', "line 2, field 'prompt': missing"),
        ('{"ts": "2026-11-20T10:00:00Z", "prompt": 42}', "line 2, field 'prompt': expected a string, got int"),
        ('{"ts": "2026-11-20T10:00:00Z", "prompt": "   "}', "line 2, field 'prompt': empty"),
        ('{"ts": "2026-11-20T10:00:00Z", "prompt": "hi", "response": 3}', "line 2, field 'response': expected a string or null"),
        ('{"ts": "2026-11-20T10:00:00Z", "prompt": "hi"', "line 2: not valid JSON"),
        ('["2026-11-20", "hi"]', "line 2: expected a JSON object, got list"),
    ],
)
def test_bad_log_lines_name_file_line_and_field(tmp_path: Path, sqlite_url: str, line: str, expected: str) -> None:
    logs = tmp_path / "prod.jsonl"
    logs.write_text(GOOD + "\n" + line + "\n" + GOOD.replace("bread", "cake") + "\n", encoding="utf-8")
    result = cli.invoke(app, ["monitor", "ingest", str(logs), "--stream", "prod", "--db", sqlite_url])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert f"{logs}, {expected}" in flat(result.output)
    store = Store(sqlite_url)
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(prompt_logs)).scalar_one() == 0  # nothing half-stored
    store.close()


def test_empty_and_missing_log_files(tmp_path: Path, sqlite_url: str) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    result = cli.invoke(app, ["monitor", "ingest", str(empty), "--stream", "s", "--db", sqlite_url])
    assert result.exit_code == 2 and "file is empty" in flat(result.output)
    result = cli.invoke(app, ["monitor", "ingest", str(tmp_path / "absent.jsonl"), "--stream", "s", "--db", sqlite_url])
    assert result.exit_code == 2 and "file not found" in flat(result.output)


def test_custom_field_names_timestamps_and_features(tmp_path: Path, sqlite_url: str) -> None:
    logs = tmp_path / "custom.jsonl"
    rows = [
        {"time": 1763632800, "input": "How do I bake bread at home?"},
        {"time": "2026-11-20T12:00:00+02:00", "input": "Comment faire cuire du pain à la maison ?", "output": "Au four."},
        {"time": "2026-11-20 11:00:00", "input": "What is the capital of France?", "output": None},
    ]
    logs.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    result = cli.invoke(app, ["monitor", "ingest", str(logs), "--stream", "s", "--ts-field", "time", "--prompt-field", "input",
                              "--response-field", "output", "--db", sqlite_url, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["inserted"] == 3 and report["first_ts"] == "2025-11-20T10:00:00+00:00"
    store = Store(sqlite_url)
    with store.engine.connect() as conn:
        stored = {r.prompt: r for r in conn.execute(select(prompt_logs))}
    store.close()
    french = stored["Comment faire cuire du pain à la maison ?"]
    assert french.features["language"] == "fr" and french.response == "Au four."
    assert french.ts.replace(tzinfo=dt.UTC) == dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)  # +02:00 stored as UTC
    english = stored["How do I bake bread at home?"]
    assert english.features == {"n_chars": 28, "n_words": 7, "language": "en"}
    assert english.response is None


def test_parse_timestamp_reads_naive_times_as_utc() -> None:
    assert parse_timestamp("2026-11-20T10:00:00") == dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)
    assert parse_timestamp("2026-11-20") == dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    assert parse_timestamp(0) == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@pytest.mark.postgres
def test_ingest_and_windows_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    from monitors.logs import load_window, stream_bounds

    logs = tmp_path / "l.jsonl"
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    logs.write_text("".join(json.dumps({"ts": (start + dt.timedelta(hours=i)).isoformat(), "prompt": f"question number {i}"}) + "\n"
                            for i in range(48)), encoding="utf-8")
    assert cli.invoke(app, ["monitor", "ingest", str(logs), "--stream", "pg", "--db", pg_url]).exit_code == 0
    store = Store(pg_url)
    first, last, n = stream_bounds(store, "pg")
    window = load_window(store, "pg", start + dt.timedelta(hours=24), start + dt.timedelta(hours=48))
    store.close()
    assert (first, last, n) == (start, start + dt.timedelta(hours=47), 48)
    assert window.prompts[0] == "question number 24" and len(window.prompts) == 24


# ---- webhook -------------------------------------------------------------------------------------


class _Receiver:
    """A local HTTP server answering `statuses` in turn (then 200), recording every JSON body."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.bodies: list[dict[str, object]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[_Receiver]:
    r = _Receiver(getattr(request, "param", []))
    yield r
    r.close()


FAST = WebhookConfig(retries=3, backoff_s=0.01, timeout_s=5)


@pytest.mark.parametrize("receiver", [[503, 500]], indirect=True)
def test_webhook_retries_transient_failures_with_backoff(receiver: _Receiver) -> None:
    waits: list[float] = []
    delivery = post_json(receiver.url, {"alarm": "x"}, FAST, sleep=waits.append)
    assert delivery.delivered and delivery.attempts == 3 and delivery.status == 200
    assert waits == [0.01, 0.02]  # exponential backoff
    assert receiver.bodies == [{"alarm": "x"}] * 3


@pytest.mark.parametrize("receiver", [[400]], indirect=True)
def test_webhook_does_not_retry_a_rejected_payload(receiver: _Receiver) -> None:
    delivery = post_json(receiver.url, {"alarm": "x"}, FAST, sleep=lambda _: None)
    assert (delivery.delivered, delivery.attempts, delivery.status) == (False, 1, 400)


def test_webhook_gives_up_after_retries_when_nobody_listens() -> None:
    r = _Receiver([])
    url = r.url
    r.close()  # the port is closed now: connection refused
    delivery = post_json(url, {"alarm": "x"}, FAST, sleep=lambda _: None)
    assert (delivery.delivered, delivery.attempts) == (False, 4)
    assert post_json("ftp://example/x", {}, FAST).error is not None


def _drifting_runs(url: str, values: tuple[float, ...] = (0.80,) * 6 + (0.70,) * 6, tag: str | None = None) -> list[str]:
    store = Store(url)
    ids = []
    for v in values:
        i = uuid.uuid4().hex[:8]
        run_id = store.create_run({"name": f"n{i}", "suite": "rag-extraction", "suite_version": "1.0", "backend": "file",
                                   "backend_info": {}, "generation": {}, "config": {}, "config_hash": f"h{i}",
                                   "fingerprint": "f", "n_samples": 400, "versions": {}}, tags=[tag] if tag else ())
        store.finish_run(run_id, [MetricValue("f1", v, 0.02, 400, True)])
        ids.append(run_id)
    store.close()
    return ids


def test_a_scheduled_job_pages_once_per_state_change(receiver: _Receiver, sqlite_url: str) -> None:
    """Twice on the same data: one notification. Recovery: one 'resolved'. Drift again: a new alarm."""
    _drifting_runs(sqlite_url)

    def check(last: int) -> dict[str, object]:
        result = cli.invoke(app, ["monitor", "drift", "scores", "--suite", "rag-extraction", "--last", str(last),
                                  "--db", sqlite_url, "--json", "--webhook", receiver.url])
        assert result.exit_code in (0, 1), result.output
        return dict(json.loads(result.stdout))

    first, second = check(12), check(12)
    assert first["alarm"] and second["alarm"]
    assert [n["state"] for n in first["notifications"]] == ["firing"] and second["notifications"] == []
    assert len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert str(body["text"]).startswith(":rotating_light: *harness alarm* `drift-score` *f1* on suite=rag-extraction")
    assert "sustained drop" in str(body["text"])
    assert body["finding"]["name"] == "f1" and body["finding"]["alarm"] is True  # type: ignore[index]
    assert body["subject"] == "suite=rag-extraction" and body["state"] == "firing"

    states = json.loads(cli.invoke(app, ["monitor", "alarms", "--db", sqlite_url, "--json"]).stdout)["states"]
    assert [(s["name"], s["state"], s["times_seen"]) for s in states] == [("f1", "firing", 2)]

    _drifting_runs(sqlite_url, (0.80,) * 8)  # recovered: the newest 8 runs are back at the reference level
    recovered = check(8)
    assert not recovered["alarm"] and [n["state"] for n in recovered["notifications"]] == ["resolved"]
    assert str(receiver.bodies[1]["text"]).startswith(":white_check_mark: *harness resolved*")
    assert check(8)["notifications"] == []  # still fine: nothing to say

    _drifting_runs(sqlite_url, (0.70,) * 6)  # drifts again: a new state change, a new page
    again = check(12)
    assert again["alarm"] and [n["state"] for n in again["notifications"]] == ["firing"]
    assert [b["state"] for b in receiver.bodies] == ["firing", "resolved", "firing"]
    states = json.loads(cli.invoke(app, ["monitor", "alarms", "--firing", "--db", sqlite_url, "--json"]).stdout)["states"]
    assert [(s["state"], s["times_seen"]) for s in states] == [("firing", 1)]


def test_renotify_policy() -> None:
    """While an alarm keeps firing, a notification is due again only after `renotify_after`."""
    now = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    firing = {"state": "firing", "last_notified": now - dt.timedelta(hours=3)}
    assert _due(None, True, now, AlarmPolicyConfig()) == "firing"
    assert _due(firing, True, now, AlarmPolicyConfig()) is None
    assert _due(firing, True, now, AlarmPolicyConfig(renotify_after="2h")) == "firing"
    assert _due(firing, True, now, AlarmPolicyConfig(renotify_after="4h")) is None
    assert _due(firing, False, now, AlarmPolicyConfig()) == "resolved"
    assert _due(firing, False, now, AlarmPolicyConfig(notify_resolved=False)) is None
    assert _due({"state": "ok", "last_notified": now}, False, now, AlarmPolicyConfig()) is None
    with pytest.raises(ValueError, match="renotify_after"):
        AlarmPolicyConfig(renotify_after="daily")


def test_cli_posts_alarms_and_resends_undelivered(receiver: _Receiver, sqlite_url: str) -> None:
    _drifting_runs(sqlite_url)
    # first, a webhook nobody listens on: the alarm is stored undelivered, the check still exits 1
    dead = _Receiver([])
    dead_url = dead.url
    dead.close()
    cfg = Path(sqlite_url.removeprefix("sqlite:///")).with_name("monitor.yaml")
    cfg.write_text("webhook: {retries: 1, backoff_s: 0.0, timeout_s: 2}\n", encoding="utf-8")
    result = cli.invoke(app, ["monitor", "drift", "scores", "--suite", "rag-extraction", "--db", sqlite_url, "--json",
                              "--config", str(cfg), "--webhook", dead_url])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["deliveries"][0]["delivered"] is False
    pending = cli.invoke(app, ["monitor", "alarms", "--undelivered", "--db", sqlite_url, "--json"])
    assert len(json.loads(pending.stdout)["alarms"]) == 1
    # then resend to a live receiver
    resent = cli.invoke(app, ["monitor", "alarms", "--resend", "--config", str(cfg), "--webhook", receiver.url,
                              "--db", sqlite_url, "--json"])
    assert resent.exit_code == 0, resent.output
    assert [a["delivered"] for a in json.loads(resent.stdout)["alarms"]] == [True]
    assert receiver.bodies[0]["kind"] == "drift-score" and receiver.bodies[0]["name"] == "f1"
    assert "sustained drop" in str(receiver.bodies[0]["message"])
    # the same check on the same runs again: still alarming (exit 1), but already notified, so nothing is sent
    again = cli.invoke(app, ["monitor", "drift", "scores", "--suite", "rag-extraction", "--db", sqlite_url, "--json",
                             "--webhook", receiver.url])
    assert again.exit_code == 1 and json.loads(again.stdout)["deliveries"] == []
    assert len(receiver.bodies) == 1
    none_left = cli.invoke(app, ["monitor", "alarms", "--undelivered", "--db", sqlite_url, "--json"])
    assert json.loads(none_left.stdout)["alarms"] == []


def test_bad_monitor_config_is_exit_2(tmp_path: Path, sqlite_url: str) -> None:
    cfg = tmp_path / "m.yaml"
    cfg.write_text("score: {refrence_runs: 3}\n", encoding="utf-8")
    result = cli.invoke(app, ["monitor", "drift", "scores", "--suite", "rag-extraction", "--config", str(cfg), "--db", sqlite_url])
    assert result.exit_code == 2 and "score.refrence_runs" in flat(result.output)
    result = cli.invoke(app, ["monitor", "alarms", "--resend", "--db", sqlite_url])
    assert result.exit_code == 2 and "--resend needs --webhook" in flat(result.output)
