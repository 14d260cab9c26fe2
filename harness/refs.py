"""Run references for `compare`, `gate` and the monitors: which stored runs a REF on the command line means.

A REF selects at most one run per suite:

- `run:ID` or a bare run id (or unambiguous prefix): that one run;
- `tag:NAME` or a bare tag: for every suite, the newest run carrying the tag;
- `latest:MODEL`: for every suite, the newest run of that model (the `--model` string as stored).

A bare REF that is both a tag and a run id prefix is refused as ambiguous. The newest run is taken
whatever its status: a failed or unfinished newest run is reported (and the gate cannot decide)
rather than silently replaced by an older run that happens to be complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from harness.errors import UserError
from harness.store import Store, run_tags, runs


@dataclass(frozen=True)
class Selection:
    """The runs a REF selected, one per suite (`runs[suite]` is the run's row)."""

    ref: str
    kind: str  # run | tag | latest
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run_ids(self) -> dict[str, str]:
        return {suite: str(row["id"]) for suite, row in sorted(self.runs.items())}

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "kind": self.kind, "runs": self.run_ids()}


def _newest_per_suite(store: Store, where: Any) -> dict[str, dict[str, Any]]:
    query = select(runs).where(where).order_by(runs.c.created_at.desc(), runs.c.id.desc())
    chosen: dict[str, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        for row in conn.execute(query).mappings():
            chosen.setdefault(str(row["suite"]), dict(row))
    return chosen


def _by_tag(store: Store, tag: str) -> dict[str, dict[str, Any]]:
    return _newest_per_suite(store, runs.c.id.in_(select(run_tags.c.run_id).where(run_tags.c.tag == tag)))


def _by_id(store: Store, ref: str) -> dict[str, dict[str, Any]]:
    run = store.get_run(ref)
    run.pop("tags", None)
    return {str(run["suite"]): run}


def _matches_run_id(store: Store, ref: str) -> bool:
    with store.engine.connect() as conn:
        return conn.execute(select(runs.c.id).where(runs.c.id.startswith(ref, autoescape=True)).limit(1)).first() is not None


def resolve_ref(store: Store, ref: str) -> Selection:
    """Turn a REF into the runs it selects; an unknown REF is a UserError (exit 2)."""
    kind, sep, value = ref.partition(":")
    if sep and kind == "run":
        return Selection(ref, "run", _by_id(store, value))
    if sep and kind == "tag":
        found = _by_tag(store, value)
        if not found:
            raise UserError(f"no run is tagged '{value}' in store {store.safe_url}")
        return Selection(ref, "tag", found)
    if sep and kind == "latest":
        found = _newest_per_suite(store, runs.c.model == value)
        if not found:
            raise UserError(f"no run of model '{value}' in store {store.safe_url} (give the --model string used to run it)")
        return Selection(ref, "latest", found)
    if not ref:
        raise UserError("empty run reference")
    tagged = _by_tag(store, ref)
    is_run = _matches_run_id(store, ref)
    if tagged and is_run:
        raise UserError(f"'{ref}' is both a tag and a run id prefix: write tag:{ref} or run:{ref}")
    if tagged:
        return Selection(ref, "tag", tagged)
    if is_run:
        return Selection(ref, "run", _by_id(store, ref))
    raise UserError(f"'{ref}' is neither a run id nor a tag in store {store.safe_url} (or use latest:MODEL)")


def resolve_one(store: Store, ref: str, suite: str | None = None, role: str = "run") -> dict[str, Any]:
    """The single run a REF means where one run is expected (monitors): a tag or `latest:MODEL` that
    selects runs of several suites needs `suite` to say which (otherwise a UserError lists them)."""
    selection = resolve_ref(store, ref)
    if selection.kind == "run":  # one run asked for by id: its suite is checked by the caller
        return next(iter(selection.runs.values()))
    if suite is not None:
        if suite not in selection.runs:
            found = ", ".join(sorted(selection.runs)) or "none"
            raise UserError(f"{role} '{ref}' selects no {suite} run (it selects: {found})")
        return selection.runs[suite]
    if len(selection.runs) > 1:
        raise UserError(f"{role} '{ref}' selects runs of several suites ({', '.join(sorted(selection.runs))}); add --suite")
    return next(iter(selection.runs.values()))


def resolve_pair(store: Store, reference: str, current: str, suite: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two REFs compared with each other: when no suite is given, the one suite both select."""
    if suite is None:
        common = sorted(set(resolve_ref(store, reference).runs) & set(resolve_ref(store, current).runs))
        if len(common) == 1:
            suite = common[0]
        elif not common:
            raise UserError(f"'{reference}' and '{current}' select no run of a common suite")
        else:
            raise UserError(f"'{reference}' and '{current}' both select runs of {', '.join(common)}; add --suite")
    return resolve_one(store, reference, suite, "reference"), resolve_one(store, current, suite, "current")
