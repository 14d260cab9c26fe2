"""Streamlit helpers shared by the pages: the read-only store, pagination, empty states, run pickers."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import streamlit as st

from dashboards import queries
from harness.config import resolve_db_url
from harness.errors import HarnessError
from harness.store import Store

#: `harness board` passes the store URL to the Streamlit process in this variable (not argv, so a
#: PostgreSQL password never shows up in the process list).
DB_ENV = "HARNESS_BOARD_DB"


@st.cache_resource(show_spinner=False)
def _open(url: str) -> Store:
    return Store(url, read_only=True)


def store() -> Store:
    """The store this board shows, opened read-only once per process; stops the page on failure."""
    url = os.environ.get(DB_ENV) or resolve_db_url(None)
    try:
        return _open(url)
    except HarnessError as exc:
        st.error(f"Cannot open the store: {exc}")
        st.stop()
        raise  # unreachable: st.stop() raises


def empty(what: str, how: str) -> None:
    """The "nothing stored yet" state: what is missing and the command that fills it."""
    st.info(f"No {what} stored yet. {how}", icon=":material/info:")


def pager(key: str, total: int, limit: int) -> int:
    """A page picker under a table; returns the row offset of the chosen page."""
    pages = max(1, -(-total // limit))
    if pages == 1:
        st.caption(f"{total} row(s)")
        return 0
    col, info = st.columns([1, 4])
    page = int(col.number_input("page", min_value=1, max_value=pages, value=1, step=1, key=key))
    info.caption(f"page {page} of {pages} · {total} rows")
    return (page - 1) * limit


def run_label(row: pd.Series | dict[str, Any]) -> str:
    created = row["created_at"]
    when = f"{created:%Y-%m-%d %H:%M}" if hasattr(created, "strftime") else str(created)
    return f"{row['name']} · {row['suite']} · {str(row['run_id'])[:8]} · {when}"


def pick_run(label: str, runs: pd.DataFrame, param: str, default_index: int = 0) -> str | None:
    """A run selectbox bound to the query parameter `param` (so a page can be linked to)."""
    if runs.empty:
        return None
    ids = list(runs["run_id"])
    wanted = st.query_params.get(param)
    index = ids.index(wanted) if wanted in ids else min(default_index, len(ids) - 1)
    labels = {r["run_id"]: run_label(r) for r in runs.to_dict("records")}
    chosen = st.selectbox(label, ids, index=index, format_func=lambda i: labels[i], key=f"pick_{param}")
    if chosen and st.query_params.get(param) != chosen:
        st.query_params[param] = chosen
    return str(chosen) if chosen else None


def ensure_run(store: Store, param: str, runs: pd.DataFrame) -> pd.DataFrame:
    """Add the run named in the URL to a picker list when it is older than the newest page of runs."""
    wanted = st.query_params.get(param)
    if not wanted or wanted in set(runs["run_id"]):
        return runs
    detail = queries.run_detail(store, wanted)
    if detail is None:
        st.warning(f"No run '{wanted}' in this store.")
        return runs
    extra = {**detail, "run_id": detail["id"], "tags": ", ".join(detail["tags"])}
    return pd.concat([pd.DataFrame([{c: extra.get(c) for c in runs.columns}]), runs], ignore_index=True)
