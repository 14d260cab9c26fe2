"""What every board query shares: one page of rows, DataFrames with fixed columns, normal intervals.

Every query is bounded: lists are paginated in SQL (`offset`/`limit`), per-run reads go through the
`(run_id, ...)` primary keys and indexes, and no function reads a whole table into memory
(500 runs x 2,000 samples must stay under 2 s a page; `benchmarks/board.py` times it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.sql import Select

from harness.store import Store, alarms, monitor_runs, runs, sweeps, train_runs

#: Two-sided 95% normal quantile (1.959964...).
Z95 = NormalDist().inv_cdf(0.975)


@dataclass(frozen=True)
class Page:
    """One page of a longer result: the rows shown and how many rows match in total."""

    frame: pd.DataFrame
    total: int
    offset: int
    limit: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.limit)) if self.limit else 1


def _frame(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """A DataFrame with exactly `columns`, also when there are no rows (pages test `.empty`)."""
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=list(columns))


def _read(store: Store, query: Select[Any]) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def normal_ci(value: float | None, stderr: float | None, z: float = Z95) -> tuple[float | None, float | None]:
    """`value ± z * stderr`; (None, None) when either is unknown (a single sample has no stderr)."""
    if value is None or stderr is None or math.isnan(stderr):
        return None, None
    return value - z * stderr, value + z * stderr


def store_counts(store: Store) -> dict[str, int]:
    """Row counts of the tables each page reads (the "nothing stored yet" checks)."""
    tables = {"runs": runs, "train_runs": train_runs, "monitor_runs": monitor_runs, "alarms": alarms, "sweeps": sweeps}
    with store.engine.connect() as conn:
        return {name: int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for name, t in tables.items()}
