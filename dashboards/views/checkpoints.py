"""Checkpoints: every metric of a fine-tuning run's checkpoints against step, with loss and grad norm."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, queries, ui

st.title("Checkpoints")
store = ui.store()
train_list = queries.train_run_list(store)
if train_list.empty:
    ui.empty("training runs", "`harness finetune CONFIG` records its steps and checkpoints here; evaluate a checkpoint "
             "with `harness run` to see its scores against the step.")
    st.stop()

labels = {r["train_run_id"]: f"{r['name']} · {r['method']} · {r['train_run_id'][:8]} · {r['status']}"
          for r in train_list.to_dict("records")}
ids = list(labels)
wanted = st.query_params.get("train_run")
train_run_id = st.selectbox("training run", ids, index=ids.index(wanted) if wanted in ids else 0, format_func=lambda i: labels[i])
if st.query_params.get("train_run") != train_run_id:
    st.query_params["train_run"] = train_run_id

row = train_list.set_index("train_run_id").loc[train_run_id]
c1, c2, c3, c4 = st.columns(4)
c1.metric("base model", str(row["base_model"]).rsplit("/", 1)[-1])
c2.metric("steps logged", int(row["n_steps"]))
c3.metric("checkpoints", int(row["n_checkpoints"]))
c4.metric("evaluated runs", int(row["n_evals"]))

scores = queries.checkpoint_metrics(store, train_run_id)
dynamics = queries.train_dynamics(store, train_run_id)
if scores.empty and dynamics.empty:
    st.info("Nothing recorded for this training run yet: no training steps and no evaluated checkpoints.")
    st.stop()
names = sorted(scores["metric"].unique())
default = [n for n in names if "/" not in n][:3] or names[:3]
chosen = st.multiselect("metrics", names, default=default)
if scores.empty:
    st.info("No checkpoint of this run has been evaluated yet; showing training dynamics only.")
st.plotly_chart(charts.checkpoint_curves(scores, dynamics, chosen), width="stretch")

with st.expander("scores by step"):
    st.dataframe(scores, hide_index=True, width="stretch")
with st.expander("checkpoints"):
    st.dataframe(queries.train_checkpoints(store, train_run_id), hide_index=True, width="stretch")
