"""Sweeps: trials, early-vs-final agreement (is judging early safe?), and the data-efficiency curve."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, queries, ui

st.title("Sweeps")
store = ui.store()
sweep_list = queries.sweep_list(store)
if sweep_list.empty:
    ui.empty("sweeps", "`harness sweep CONFIG` records its trials here.")
    st.stop()

labels = {r["sweep_id"]: f"{r['name']} · {r['kind']} · {r['sweep_id'][:8]} · {r['status']}" for r in sweep_list.to_dict("records")}
ids = list(labels)
wanted = st.query_params.get("sweep")
sweep_id = st.selectbox("sweep", ids, index=ids.index(wanted) if wanted in ids else 0, format_func=lambda i: labels[i])
if st.query_params.get("sweep") != sweep_id:
    st.query_params["sweep"] = sweep_id

trials = queries.sweep_trial_table(store, sweep_id)
if trials.empty:
    st.info("This sweep has no trials yet.")
    st.stop()
c1, c2, c3, c4 = st.columns(4)
c1.metric("trials", len(trials))
c2.metric("pruned early", int((trials["state"] == "pruned").sum()))
c3.metric("best final score", f"{trials['final_score'].max():.4f}" if trials["final_score"].notna().any() else "n/a")
rho = queries.early_final_agreement(trials)
c4.metric("early/final rank corr.", f"{rho:.2f}" if rho is not None else "n/a",
          help="Spearman correlation of early and final scores over trials that have both")

left, right = st.columns(2)
with left:
    st.subheader("Early vs final score")
    if trials[["early_score", "final_score"]].dropna().empty:
        st.info("No trial has both an early and a final score yet.")
    else:
        st.plotly_chart(charts.early_final_scatter(trials), width="stretch")
        unplotted = int(trials["final_score"].isna().sum())
        if unplotted:
            st.caption(f"{unplotted} trial(s) without a final score (pruned, failed or running) are not plotted.")
with right:
    st.subheader("Data efficiency")
    curve = queries.data_efficiency(trials)
    if len(curve) < 2:
        st.info("A data-efficiency curve needs finished trials at two or more training-set sizes.")
    else:
        st.plotly_chart(charts.efficiency_curve(curve), width="stretch")
        st.dataframe(curve, hide_index=True)

st.subheader("Trials")
st.dataframe(trials.assign(params=[str(p) for p in trials["params"]]), hide_index=True, width="stretch")
detail = queries.sweep_detail(store, sweep_id)
if detail and detail.get("report"):
    with st.expander("sweep report"):
        st.json(detail["report"])
