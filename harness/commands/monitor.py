"""`harness monitor drift scores|outputs|inputs`, `monitor rag`, `monitor ingest`, `monitor alarms`.

Every check is stored (monitor_runs, monitor_findings, alarms) and exits 1 when an alarm fires, so
a scheduled job can page someone; `--webhook URL` also POSTs each alarm as JSON.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.commands.common import DbOption, JsonOption, err, exit_on_error, open_store, out, print_json
from harness.errors import UserError
from harness.store import Store
from monitors.config import MonitorConfig, load_monitor_config
from monitors.results import MonitorResult, list_alarms, mark_delivered, save_result

monitor_app = typer.Typer(help="Watch models: score/output/input drift, RAG regressions, alarms.", no_args_is_help=True)
drift_app = typer.Typer(help="Drift checks: scores along runs, outputs between runs, inputs between log windows.",
                        no_args_is_help=True)
monitor_app.add_typer(drift_app, name="drift")

ConfigOption = Annotated[str | None, typer.Option("--config", "-c", help="Monitor thresholds YAML (see monitors/config.py).")]
WebhookOption = Annotated[str | None, typer.Option("--webhook", help="POST each alarm as JSON to this URL (retried with backoff).")]
EmbedderOption = Annotated[str | None, typer.Option("--embedder", help="auto | minilm | tfidf (overrides the config).")]


def _config(path: str | None, webhook: str | None = None, embedder: str | None = None, **sections: dict[str, Any]) -> MonitorConfig:
    config = load_monitor_config(path)
    data = config.model_dump()
    if webhook:
        data["webhook"]["url"] = webhook
    if embedder:
        data["embedding"]["backend"] = embedder
    for name, values in sections.items():
        data[name].update({k: v for k, v in values.items() if v is not None})
    from pydantic import ValidationError

    from harness.config import format_validation_error
    from harness.errors import ConfigError

    try:
        return MonitorConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def _finish(store: Store, result: MonitorResult, config: MonitorConfig, json_output: bool) -> None:
    """Store the check, deliver its alarms, print, and exit 1 when anything alarmed."""
    monitor_run_id, alarm_rows = save_result(store, result, config.alarms)
    deliveries = []
    if config.webhook.url:
        from monitors.webhook import post_json

        for row in alarm_rows:
            delivery = post_json(config.webhook.url, row["payload"], config.webhook)
            if delivery.delivered:
                mark_delivered(store, row["id"])
            else:
                err.print(f"[yellow]warning:[/] alarm {row['id']} not delivered after {delivery.attempts} attempt(s): "
                          f"{delivery.error}; it stays in the store (harness monitor alarms --undelivered --resend)")
            deliveries.append({"alarm_id": row["id"], "delivered": delivery.delivered, "attempts": delivery.attempts,
                               "error": delivery.error})
    if not alarm_rows and result.alarm:
        err.print("alarm already notified for this subject (see harness monitor alarms); not sent again")
    if json_output:
        print_json(result.to_json(monitor_run_id) | {"alarms": [r["id"] for r in alarm_rows],
                                                     "notifications": [_note(r) for r in alarm_rows],
                                                     "deliveries": deliveries})
    else:
        _render(result, monitor_run_id)
    store.close()
    if result.alarm:
        raise typer.Exit(1)


def _note(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "state": row["payload"]["state"], "name": row["name"]}


def _fmt(value: float | None) -> str:
    """Numbers for people: p-values and tiny statistics in scientific notation, never 0.0000000005."""
    if value is None:
        return ""
    return f"{value:.2e}" if value != 0 and abs(value) < 1e-3 else f"{value:.4g}"


def _render(result: MonitorResult, monitor_run_id: str) -> None:
    if result.kind == "drift-score":  # the subject is the series; its run ids are in --json
        n_ref, n_cur = len(result.reference.split(",")), len(result.current.split(","))
        what = f"{result.watched}: {n_ref} reference runs, {n_cur} monitored"
    else:
        what = f"{result.reference}  ->  {result.current}"
    table = Table(title=f"{result.kind}  {what}  (monitor run {monitor_run_id})")
    tested = any(f.p_value is not None for f in result.findings)  # score drift has no p-value, only a trend
    trended = any("slope_per_run" in f.details for f in result.findings)
    columns = ["check", "statistic", "value", "threshold", *(["p (Holm)", "alpha"] if tested else []),
               *(["trend per run (95% CI)"] if trended else []), "alarm"]
    for col in columns:
        table.add_column(col)
    for f in result.findings:
        slope, ci = f.details.get("slope_per_run"), f.details.get("slope_ci95")
        trend = f"{slope:+.3g} ({ci[0]:+.3g} .. {ci[1]:+.3g})" if slope is not None and ci else ""
        cells = [f.name, f.statistic, _fmt(f.value), _fmt(f.threshold), *([_fmt(f.p_value), _fmt(f.details.get("alpha"))]
                                                                          if tested else []),
                 *([trend] if trended else []), "[bold red]ALARM[/]" if f.alarm else "ok"]
        table.add_row(*cells)
    out.print(table)
    for f in result.findings:
        out.print(("[bold red]ALARM[/] " if f.alarm else "  ") + f.message, highlight=False)
    worst = result.summary.get("worst") if isinstance(result.summary, dict) else None
    if worst:
        wt = Table(title="worst regressions")
        for col in ("sample", "question", "gold", "baseline", "candidate", "why"):
            wt.add_column(col, overflow="fold")
        for w in worst:
            gold = " | ".join(g for g in w["gold"] if g) or "(unanswerable)"
            why = ", ".join(w["reasons"]) or f"f1 {w['f1_baseline']:.2f}->{w['f1_candidate']:.2f}"
            wt.add_row(w["sample_id"], w["question"][:80], gold[:40], (w["baseline"] or "(abstained)")[:40],
                       (w["candidate"] or "(abstained)")[:40], why)
        out.print(wt)


@drift_app.command("scores")
def drift_scores(
    suite: Annotated[str | None, typer.Option(help="Suite whose runs form the series.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only runs with this tag (e.g. nightly).")] = None,
    model: Annotated[str | None, typer.Option(help="Only runs of this model path/id.")] = None,
    train_run: Annotated[str | None, typer.Option("--train-run", help="Checkpoints of one training run, by step.")] = None,
    run: Annotated[list[str] | None, typer.Option("--run", help="Explicit runs (id, tag, latest:MODEL), oldest first.")] = None,
    metric: Annotated[list[str] | None, typer.Option(help="Metric(s) to watch (default: the suite's primary metric).")] = None,
    last: Annotated[int, typer.Option(min=2, help="Use the newest N runs of the selection.")] = 30,
    reference_runs: Annotated[int | None, typer.Option(min=1, help="Earliest runs forming the reference level.")] = None,
    config: ConfigOption = None,
    webhook: WebhookOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Sustained drop of a metric along a sequence of runs (CUSUM on standardised values)."""
    with exit_on_error():
        from monitors.drift import score_drift
        from monitors.sources import default_metric, metric_series, select_runs

        cfg = _config(config, webhook, score={"reference_runs": reference_runs})
        store = open_store(db, create=False)
        rows = select_runs(store, suite, tag, model, train_run, run or [], last)
        if not rows:
            raise UserError("no complete runs match the selection")
        names = metric or [default_metric(str(rows[0]["suite"]))]
        series, higher = metric_series(store, rows, names)
        watched = " ".join(f"{k}={v}" for k, v in (("suite", suite), ("tag", tag), ("model", model),
                                                   ("train_run", train_run)) if v) or "runs=" + ",".join(run or [])
        result = dataclasses.replace(score_drift(series, higher, cfg.score), subject=watched)
        data = {str(r["data_hash"] or r["data_source"]) for r in rows}
        if len(data) > 1:
            warning = f"the {len(rows)} runs used {len(data)} different data sets: score changes may be data changes"
            err.print(f"[yellow]warning:[/] {warning}")
            result = dataclasses.replace(result, summary={**result.summary, "warning": warning})
        _finish(store, result, cfg, json_output)


@drift_app.command("outputs")
def drift_outputs(
    reference: Annotated[str, typer.Option(help="Reference run: id (or prefix), tag (its newest run) or latest:MODEL.")],
    current: Annotated[str, typer.Option(help="Current run: id (or prefix), tag (its newest run) or latest:MODEL.")],
    suite: Annotated[str | None, typer.Option(help="Which suite's runs, when a tag selects several.")] = None,
    embedder: EmbedderOption = None,
    config: ConfigOption = None,
    webhook: WebhookOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Response length (KS), refusal rate (chi²), token distribution (JS) and embedding (MMD) drift between two runs."""
    with exit_on_error():
        from harness.refs import resolve_pair
        from monitors.drift import output_drift
        from monitors.sources import run_responses

        cfg = _config(config, webhook, embedder)
        store = open_store(db, create=False)
        ref_run, cur_run = resolve_pair(store, reference, current, suite)
        ref_id, ref_texts = run_responses(store, str(ref_run["id"]))
        cur_id, cur_texts = run_responses(store, str(cur_run["id"]))
        result = output_drift(ref_texts, cur_texts, cfg, ref_id, cur_id)
        _finish(store, dataclasses.replace(result, subject=f"{reference} -> {current}"), cfg, json_output)


@drift_app.command("inputs")
def drift_inputs(
    stream: Annotated[str, typer.Option(help="Stream name given to harness monitor ingest.")],
    reference: Annotated[str | None, typer.Option(help="Reference window START..END (default: the window before --current).")] = None,
    current: Annotated[str | None, typer.Option(help="Current window START..END (default: the newest --window).")] = None,
    window: Annotated[str | None, typer.Option(help="Default window length, e.g. 24h or 7d (config input.window).")] = None,
    embedder: EmbedderOption = None,
    config: ConfigOption = None,
    webhook: WebhookOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """PSI of prompt length, language and topics plus embedding MMD between two windows of a prompt stream."""
    with exit_on_error():
        from monitors.drift import input_drift
        from monitors.logs import load_window, windows_or_default

        cfg = _config(config, webhook, embedder, input={"window": window})
        store = open_store(db, create=False)
        (r0, r1), (c0, c1) = windows_or_default(store, stream, reference, current, cfg.input.window)
        result = input_drift(load_window(store, stream, r0, r1), load_window(store, stream, c0, c1), cfg)
        _finish(store, dataclasses.replace(result, subject=f"stream {stream}"), cfg, json_output)


@monitor_app.command("rag")
def rag(
    baseline: Annotated[str, typer.Option(help="Baseline rag-extraction run: id (or prefix), tag or latest:MODEL.")],
    candidate: Annotated[str, typer.Option(help="Candidate rag-extraction run: id (or prefix), tag or latest:MODEL.")],
    worst: Annotated[int | None, typer.Option(min=0, help="How many worst regressions to list.")] = None,
    config: ConfigOption = None,
    webhook: WebhookOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """RAG-extraction regressions on paired questions: EM/F1 flips, unsupported answers, abstention changes."""
    with exit_on_error():
        from harness.refs import resolve_one
        from monitors.regressions import compare_runs

        cfg = _config(config, webhook, rag={"worst": worst})
        store = open_store(db, create=False)
        base_id = str(resolve_one(store, baseline, "rag-extraction", "baseline")["id"])
        cand_id = str(resolve_one(store, candidate, "rag-extraction", "candidate")["id"])
        result = compare_runs(store, base_id, cand_id, cfg.rag)
        _finish(store, dataclasses.replace(result, subject=f"{baseline} -> {candidate}"), cfg, json_output)


@monitor_app.command("ingest")
def ingest(
    logs: Annotated[str, typer.Argument(help="JSONL prompt log: {ts, prompt, response?} per line.")],
    stream: Annotated[str, typer.Option(help="Name of the traffic stream (e.g. prod-chat).")],
    ts_field: Annotated[str, typer.Option(help="Field holding the timestamp (ISO-8601 or Unix seconds).")] = "ts",
    prompt_field: Annotated[str, typer.Option(help="Field holding the prompt.")] = "prompt",
    response_field: Annotated[str, typer.Option(help="Field holding the response (optional per line).")] = "response",
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Store production prompts (and responses) by stream and time, for `monitor drift inputs`."""
    with exit_on_error():
        from monitors.logs import ingest as ingest_logs

        store = open_store(db)
        try:
            report = ingest_logs(store, logs, stream, ts_field, prompt_field, response_field, show_progress=not json_output)
        finally:
            store.close()
        if json_output:
            print_json(report.to_json())
        else:
            out.print(f"stream {report.stream}: {report.inserted} prompts stored, {report.duplicates} already present "
                      f"({report.first_ts:%Y-%m-%d %H:%M} .. {report.last_ts:%Y-%m-%d %H:%M} UTC)")


@monitor_app.command("alarms")
def show_alarms(
    limit: Annotated[int, typer.Option(min=1, help="Newest N notifications.")] = 50,
    undelivered: Annotated[bool, typer.Option("--undelivered", help="Only notifications not yet delivered to a webhook.")] = False,
    firing: Annotated[bool, typer.Option("--firing", help="Only alarms that are firing now.")] = False,
    resend: Annotated[bool, typer.Option("--resend", help="POST the listed undelivered notifications to the webhook again.")] = False,
    config: ConfigOption = None,
    webhook: WebhookOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Each alarm's state (firing or ok, since when, how often seen) and the notifications sent, newest
    first; with --resend, deliver the undelivered ones (exit 1 if any still fail)."""
    with exit_on_error():
        from harness.errors import ConfigError
        from monitors.alarms import list_states
        from monitors.timeutil import human_time

        cfg = _config(config, webhook)
        if resend and not cfg.webhook.url:
            raise ConfigError("--resend needs --webhook URL (or webhook.url in --config)")
        store = open_store(db, read_only=not resend, create=False)
        states = list_states(store, firing_only=firing)
        rows = list_alarms(store, limit, undelivered or resend)
        failed = 0
        if resend and cfg.webhook.url:
            from monitors.webhook import post_json

            for row in rows:
                if row["delivered"]:
                    continue
                delivery = post_json(cfg.webhook.url, row["payload"], cfg.webhook)
                if delivery.delivered:
                    mark_delivered(store, row["id"])
                    row["delivered"] = True
                else:
                    failed += 1
        store.close()
        if json_output:
            print_json({
                "states": [{k: row[k] for k in ("key", "kind", "name", "subject", "state", "since", "last_seen",
                                                "last_notified", "times_seen", "message")} for row in states],
                "alarms": [{k: row[k] for k in ("id", "monitor_run_id", "kind", "name", "state", "message", "delivered",
                                                "created_at")} for row in rows],
            })
        else:
            st = Table(title="alarm states")
            for col in ("state", "kind", "check", "subject", "since", "last seen", "seen", "last notified"):
                st.add_column(col, overflow="fold")
            for row in states:
                st.add_row("[bold red]FIRING[/]" if row["state"] == "firing" else "ok", row["kind"], row["name"],
                           row["subject"], human_time(row["since"]), human_time(row["last_seen"]), str(row["times_seen"]),
                           human_time(row["last_notified"]) if row["last_notified"] else "-")
            out.print(st)
            table = Table(title="notifications")
            for col in ("id", "when", "state", "kind", "check", "message", "delivered"):
                table.add_column(col, overflow="fold")
            for row in rows:
                table.add_row(row["id"], human_time(row["created_at"]), row["state"], row["kind"], row["name"],
                              row["message"], "yes" if row["delivered"] else "no")
            out.print(table)
        if failed:
            raise typer.Exit(1)
