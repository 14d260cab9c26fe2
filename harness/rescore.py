"""Re-score a stored run with the current suite code, without a model.

The stored raw completions (model answers and judge answers alike) are replayed through the file
backend (`run:RUN_ID`), so the new run goes through the same runner and store as any other: a fix
to a parser or a metric is applied to old results without generating anything again.
"""

from __future__ import annotations

from typing import Any

from harness.config import GenerationConfig, ModelConfig, RunConfig, SuiteConfig
from harness.errors import UserError
from harness.store import Store


def rescore_config(store: Store, run_ref: str, tags: list[str] | None = None,
                   options: dict[str, str] | None = None) -> tuple[dict[str, Any], RunConfig]:
    """The stored run and a RunConfig that replays its completions for every role it used; `options`
    override suite options that only change scoring (e.g. the safety suite's `detector`)."""
    run = store.get_run(run_ref)
    if run["status"] != "complete":
        raise UserError(f"run {run['id']} is {run['status']}: finish it first (rerun its command), then rescore")
    config = run["config"]
    replay: dict[str, Any] = {"backend": "file", "completions": f"run:{run['id']}", "options": {"db": store.url}}
    model = ModelConfig(path=run["model"], adapter=run["adapter"], **replay)
    judge = ModelConfig(path=(config.get("judge") or {}).get("path"), **replay) if config.get("judge") else None
    return run, RunConfig(
        suites=[SuiteConfig.model_validate(config["suite"] | {"options": config["suite"].get("options", {}) | (options or {})})],
        model=model,
        judge=judge,
        generation=GenerationConfig.model_validate(run["generation"]),
        run_name=f"rescore of {run['name']}",
        tags=list(tags if tags is not None else run["tags"]),
    )


def metric_changes(before: list[dict[str, Any]], after: dict[str, float]) -> dict[str, dict[str, float | None]]:
    """Every metric whose value moved (or appeared / disappeared) between the stored run and the rescore."""
    old = {m["name"]: m["value"] for m in before}
    changed: dict[str, dict[str, float | None]] = {}
    for name in sorted(set(old) | set(after)):
        a, b = old.get(name), after.get(name)
        if a is None or b is None or abs(a - b) > 1e-12:
            changed[name] = {"before": a, "after": b}
    return changed
