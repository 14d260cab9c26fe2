"""Drift & alarms: monitor statistics over time, each monitor run's findings, and raised alarms."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, queries, ui

PAGE_SIZE = 50

st.title("Drift & alarms")
store = ui.store()
kinds = queries.monitor_kinds(store)
if not kinds:
    ui.empty("monitor results", "`harness monitor drift --reference RUN --current RUN` records one.")
    st.stop()

kind = st.selectbox("monitor", [None, *kinds], format_func=lambda v: "all" if v is None else v)
series = queries.finding_series(store, kind)
st.subheader("Statistics over time")
if series.empty:
    st.info("These monitor runs recorded no findings.")
else:
    names = sorted(series["name"].unique())
    chosen = st.multiselect("findings", names, default=names[:6])
    st.plotly_chart(charts.drift_lines(series[series["name"].isin(chosen)]), width="stretch")

st.subheader("Monitor runs")
table = st.container()
history_total = queries.monitor_history(store, kind, limit=1).total
offset = ui.pager("monitor_page", history_total, PAGE_SIZE)
history = queries.monitor_history(store, kind, offset=offset, limit=PAGE_SIZE)
with table:
    st.dataframe(history.frame.drop(columns=["summary"]), hide_index=True, width="stretch")
    ids = list(history.frame["monitor_run_id"])
    picked = st.selectbox("findings of", ids, format_func=lambda i: f"{i[:8]} · "
                          + str(history.frame.set_index("monitor_run_id").loc[i, "kind"]))
    if picked:
        st.dataframe(queries.monitor_findings_of(store, picked), hide_index=True, width="stretch")
        with st.expander("summary"):
            st.json(history.frame.set_index("monitor_run_id").loc[picked, "summary"])

st.subheader("Alarms")
alarm_table = st.container()
alarm_offset = ui.pager("alarm_page", queries.alarm_list(store, limit=1).total, PAGE_SIZE)
alarm_page = queries.alarm_list(store, offset=alarm_offset, limit=PAGE_SIZE)
with alarm_table:
    if alarm_page.total == 0:
        st.success("No alarm has been raised.")
    else:
        st.dataframe(alarm_page.frame, hide_index=True, width="stretch")
