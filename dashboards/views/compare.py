"""Compare two runs: the paired result the gate uses (per metric: difference, paired interval,
p-value, flips), then the samples that moved, regressions first."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, comparison, queries, ui

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

st.subheader("Paired result: the numbers of `harness gate`, paired by sample id")
paired = comparison.paired_comparison(store, run_a, run_b)
for problem in paired.problems:
    st.warning(problem)
if paired.frame.empty:
    st.info("No paired statistics: the runs are of different suites or share no metric.")
else:
    st.plotly_chart(charts.delta_forest(paired.frame), width="stretch")
    st.dataframe(paired.frame, hide_index=True, width="stretch")
    st.caption("Samples matched by id. Mean metrics: paired bootstrap 95% interval of the mean difference and the "
               "paired test's two-sided p (exact McNemar for 0/1 scores, exact signed-rank for few changes). Corpus "
               "metrics (BLEU, chrF, TER): paired bootstrap over segments. The gate tests one-sided, Holm-adjusted.")

st.subheader("Per-sample flips (paired by sample id)")
keys = sorted(set(queries.sample_score_keys(store, run_a)) & set(queries.sample_score_keys(store, run_b)))
if not keys:
    st.info("The two runs share no per-sample score.")
    st.stop()
suite = str(recent.set_index("run_id").loc[run_b, "suite"])
default_key = comparison.default_score(suite, keys)
key = st.selectbox("score", keys, index=keys.index(default_key) if default_key in keys else 0)
summary = comparison.paired_flips(store, run_a, run_b, key)
m1, m2, m3, m4 = st.columns(4)
m1.metric("paired samples", summary.n_paired)
m2.metric("regressions", summary.regressions)
m3.metric("improvements", summary.improvements)
if summary.mean_delta is not None:
    ci = f"[{summary.ci_low:+.4f}, {summary.ci_high:+.4f}]" if summary.ci_low is not None else "n/a"
    m4.metric("mean paired delta", f"{summary.mean_delta:+.4f}", help=f"paired bootstrap 95% CI {ci}")
    st.caption(f"paired bootstrap 95% CI of the mean delta: {ci}")
if summary.n_only_a or summary.n_only_b:
    st.warning(f"{summary.n_only_a} sample(s) only in a, {summary.n_only_b} only in b: left out of the pairing.")
table = st.container()
offset = ui.pager("flips_page", summary.regressions + summary.improvements, PAGE_SIZE)
flips = comparison.sample_flips(store, summary, offset=offset, limit=PAGE_SIZE)
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
