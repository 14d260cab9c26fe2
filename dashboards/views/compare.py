"""Compare two runs: metric deltas with confidence intervals and per-sample flips, regressions first."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, queries, ui

PAGE_SIZE = 25

st.title("Compare")
store = ui.store()
recent = ui.ensure_run(store, "b", ui.ensure_run(store, "a", queries.recent_runs(store)))
if len(recent) < 2:
    ui.empty("pair of runs", "Compare needs two stored runs: `harness run` a baseline and a candidate.")
    st.stop()
left, right = st.columns(2)
with left:
    run_a = ui.pick_run("baseline (a)", recent, "a", default_index=1)
with right:
    run_b = ui.pick_run("candidate (b)", recent, "b", default_index=0)
assert run_a is not None and run_b is not None
if run_a == run_b:
    st.warning("Pick two different runs.")
    st.stop()

deltas = queries.compare_metrics(store, run_a, run_b)
st.subheader("Metric deltas (b - a, 95% CI)")
if deltas.dropna(subset=["delta"]).empty:
    st.info("The two runs share no metric.")
else:
    st.plotly_chart(charts.delta_forest(deltas), width="stretch")
    st.dataframe(deltas, hide_index=True, width="stretch")
    st.caption("Intervals: normal approximation from each run's stored standard error, treating the runs as "
               "independent. The paired interval over shared samples is in the flips summary below.")

st.subheader("Paired statistics (what `harness gate` uses)")
paired = queries.paired_comparison(store, run_a, run_b)
if paired.empty:
    st.info("No paired statistics: the runs are of different suites or share no per-sample scores.")
else:
    st.dataframe(paired, hide_index=True, width="stretch")
    st.caption("Samples matched by id; paired bootstrap 95% interval of the mean difference, the paired test's "
               "p-value (exact McNemar for 0/1 scores, Wilcoxon for graded ones) and the minimum detectable effect.")

st.subheader("Per-sample flips (paired by sample id)")
keys = sorted(set(queries.sample_score_keys(store, run_a)) & set(queries.sample_score_keys(store, run_b)))
if not keys:
    st.info("The two runs share no per-sample score.")
    st.stop()
suite = str(recent.set_index("run_id").loc[run_b, "suite"])
default_key = queries.headline_metric(suite, keys)
key = st.selectbox("score", keys, index=keys.index(default_key) if default_key in keys else 0)
summary = queries.paired_flips(store, run_a, run_b, key)
m1, m2, m3, m4 = st.columns(4)
m1.metric("paired samples", summary.n_paired)
m2.metric("regressions", summary.regressions)
m3.metric("improvements", summary.improvements)
if summary.mean_delta is not None:
    ci = f"[{summary.ci_low:+.4f}, {summary.ci_high:+.4f}]" if summary.ci_low is not None else "n/a"
    m4.metric("mean paired delta", f"{summary.mean_delta:+.4f}", help=f"95% CI {ci}")
    st.caption(f"paired 95% CI of the mean delta: {ci}")
if summary.n_only_a or summary.n_only_b:
    st.warning(f"{summary.n_only_a} sample(s) only in a, {summary.n_only_b} only in b: left out of the pairing.")
table = st.container()
offset = ui.pager("flips_page", summary.regressions + summary.improvements, PAGE_SIZE)
flips = queries.sample_flips(store, summary, offset=offset, limit=PAGE_SIZE)
with table:
    if flips.total == 0:
        st.success("No sample changed its score.")
    else:
        st.dataframe(flips.frame, hide_index=True, width="stretch",
                     column_config={"prompt": st.column_config.TextColumn(width="medium"),
                                    "completion_a": st.column_config.TextColumn("completion (a)", width="medium"),
                                    "completion_b": st.column_config.TextColumn("completion (b)", width="medium")})
        shown = flips.frame.set_index("sample_id")
        picked = st.selectbox(
            "read a sample in full", list(shown.index), key="flip_detail",
            format_func=lambda i: f"{i} ({shown.loc[i, 'kind']}: {shown.loc[i, 'score_a']:g} -> {shown.loc[i, 'score_b']:g})",
        )
        st.text_area("prompt", shown.loc[picked, "prompt"], height=160, disabled=True)
        ca, cb = st.columns(2)
        ca.text_area("completion (a)", shown.loc[picked, "completion_a"], height=120, disabled=True)
        cb.text_area("completion (b)", shown.loc[picked, "completion_b"], height=120, disabled=True)
