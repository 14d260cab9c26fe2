"""Drift & alarms: what is alarming now, each score series with its change point, every statistic over
time (one panel per statistic), each monitor run's findings, and the notifications sent."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, queries, ui

PAGE_SIZE = 50
#: p-values print in scientific notation (0.0000000005 overflows a column); statistics with 4 digits.
NUMBERS = {
    "p_value": st.column_config.NumberColumn("p (Holm)", format="%.2e"),
    "value": st.column_config.NumberColumn("value", format="%.4g"),
    "threshold": st.column_config.NumberColumn("threshold", format="%.4g"),
}
TIMES = {c: st.column_config.DatetimeColumn(c.replace("_", " "), format="YYYY-MM-DD HH:mm")
         for c in ("created_at", "since", "last_seen", "last_notified")}

st.title("Drift & alarms")
store = ui.store()
kinds = queries.monitor_kinds(store)
if not kinds:
    ui.empty("monitor results", "`harness monitor drift scores --suite rag-extraction --tag nightly` (a series of runs) "
             "or `harness monitor drift outputs --reference main --current nightly` (two runs) records one.")
    st.stop()

st.subheader("Alarms now")
states = queries.alarm_states(store)
if states.empty:
    st.success("Nothing is alarming.")
else:
    firing = int((states["state"] == "firing").sum())
    (st.error if firing else st.success)(f"{firing} alarm(s) firing, {len(states) - firing} resolved.")
    st.dataframe(states, hide_index=True, width="stretch", column_config=TIMES)

scores = queries.score_series(store)
if scores:
    st.subheader("Score series")
    labels = [f"{s['metric']} · {s['subject']}" + (" · ALARM" if s["alarm"] else "") for s in scores]
    picked = st.selectbox("series", range(len(scores)), format_func=lambda i: labels[i], key="score_series")
    chosen = scores[int(picked or 0)]
    st.plotly_chart(charts.score_drift_chart(chosen), width="stretch")
    slope, ci = chosen.get("slope_per_run"), chosen.get("slope_ci95")
    if slope is not None and ci:
        st.caption(f"Trend (Theil-Sen): {slope:+.3g} per run, 95% CI {ci[0]:+.3g} .. {ci[1]:+.3g}.")

kind = st.selectbox("monitor", [None, *kinds], format_func=lambda v: "all" if v is None else v)
series = queries.finding_series(store, kind)
st.subheader("Statistics over time")
if series.empty:
    st.info("These monitor runs recorded no findings.")
else:
    names = sorted(series["name"].unique())
    chosen_names = st.multiselect("checks", names, default=names[:6])
    st.plotly_chart(charts.drift_lines(series[series["name"].isin(chosen_names)]), width="stretch")

st.subheader("Monitor runs")
table = st.container()
history_total = queries.monitor_history(store, kind, limit=1).total
offset = ui.pager("monitor_page", history_total, PAGE_SIZE)
history = queries.monitor_history(store, kind, offset=offset, limit=PAGE_SIZE)
with table:
    st.dataframe(history.frame.drop(columns=["summary"]), hide_index=True, width="stretch", column_config=TIMES)
    ids = list(history.frame["monitor_run_id"])
    picked_run = st.selectbox("findings of", ids, format_func=lambda i: f"{i[:8]} · "
                              + str(history.frame.set_index("monitor_run_id").loc[i, "kind"]))
    if picked_run:
        st.dataframe(queries.monitor_findings_of(store, picked_run).drop(columns=["details"]), hide_index=True,
                     width="stretch", column_config=NUMBERS)
        with st.expander("summary"):
            st.json(history.frame.set_index("monitor_run_id").loc[picked_run, "summary"])

st.subheader("Notifications")
alarm_table = st.container()
alarm_offset = ui.pager("alarm_page", queries.alarm_list(store, limit=1).total, PAGE_SIZE)
alarm_page = queries.alarm_list(store, offset=alarm_offset, limit=PAGE_SIZE)
with alarm_table:
    if alarm_page.total == 0:
        st.success("No alarm has been raised.")
    else:
        st.dataframe(alarm_page.frame, hide_index=True, width="stretch", column_config=TIMES)
