"""Run: metrics with confidence intervals, provenance, and a searchable table of samples."""

from __future__ import annotations

import json

import streamlit as st

from dashboards import charts, queries, ui
from dashboards.comparison import default_score
from suites.task_file import stored_task_file

PAGE_SIZE = 50

st.title("Run")
store = ui.store()
recent = ui.ensure_run(store, "run", queries.recent_runs(store))
run_id = ui.pick_run("run", recent, "run")
if run_id is None:
    ui.empty("runs", "`harness run SUITE --model M` stores one.")
    st.stop()
run = queries.run_detail(store, run_id)
if run is None:
    st.error(f"No run '{run_id}' in this store.")
    st.stop()

st.markdown(f"**{run['name']}** · `{run['id']}` · {run['suite']} v{run['suite_version']} · status **{run['status']}**")
if run["error"]:
    st.error(run["error"])

metric_frame = queries.run_metrics(store, run_id)
left, right = st.columns([3, 2])
with left:
    st.subheader("Metrics (95% CI)")
    if metric_frame.empty:
        st.info("This run has no metrics yet (it is still running or failed before finishing).")
    else:
        st.plotly_chart(charts.metric_ci_bars(metric_frame), width="stretch")
        st.dataframe(metric_frame, hide_index=True, width="stretch")
with right:
    st.subheader("Provenance")
    keys = ("model", "model_hash", "adapter", "adapter_hash", "backend", "config_hash", "fingerprint", "data_source",
            "data_hash", "git_revision", "train_run_id", "step", "created_at", "finished_at", "trust_remote_code")
    st.table({"field": list(keys), "value": [str(run.get(k)) for k in keys]})
    st.caption("tags: " + (", ".join(run["tags"]) or "none"))
    with st.expander("library versions"):
        st.json(run["versions"])
    with st.expander("generation and backend settings"):
        st.json({"generation": run["generation"], "backend_info": run["backend_info"]})
    task_file = stored_task_file(run)
    if task_file:
        with st.expander(f"task file {task_file['path']}"):
            st.code(task_file["text"], language="yaml")

st.subheader("Samples")
keys_available = queries.sample_score_keys(store, run_id)
default_key = default_score(run["suite"], keys_available)
s1, s2 = st.columns([3, 1])
search = s1.text_input("search (sample id, input, completion)", key="sample_search")
score_key = s2.selectbox("score", keys_available, index=keys_available.index(default_key) if default_key in keys_available else 0) \
    if keys_available else None
table = st.container()
offset = ui.pager("samples_page", queries.count_samples(store, run_id, search), PAGE_SIZE)
page = queries.run_samples(store, run_id, search=search, score_key=score_key, offset=offset, limit=PAGE_SIZE)
with table:
    if page.total == 0:
        st.info("No samples match." if search else "No samples stored for this run yet.")
    else:
        shown = page.frame.assign(scores=[json.dumps(s) for s in page.frame["scores"]])
        st.dataframe(shown, hide_index=True, width="stretch",
                     column_config={"score": st.column_config.NumberColumn(score_key or "score", format="%.3f"),
                                    "prompt": st.column_config.TextColumn(width="large"),
                                    "completion": st.column_config.TextColumn(width="medium"),
                                    "reasoning": None})
        rows = shown.set_index("sample_id")
        picked = st.selectbox("read a sample in full", list(rows.index), key="sample_detail")
        st.text_area("prompt", rows.loc[picked, "prompt"], height=160, disabled=True)
        st.text_area("completion", rows.loc[picked, "completion"], height=100, disabled=True)
        if rows.loc[picked, "reasoning"]:
            with st.expander("reasoning (not scored)", expanded=False):
                st.text_area("reasoning", rows.loc[picked, "reasoning"], height=160, disabled=True)
        st.caption(f"scores: {rows.loc[picked, 'scores']} · groups: {rows.loc[picked, 'groups'] or 'none'}")
