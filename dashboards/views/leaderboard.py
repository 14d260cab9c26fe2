"""Leaderboard: runs x metrics, filtered by model, tag, suite and date, sorted, linked to each run."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, queries, ui
from harness.comparison import primary_metric

PAGE_SIZE = 50

st.title("Leaderboard")
store = ui.store()
options = queries.filter_options(store)
if not options["suite"]:
    ui.empty("runs", "`harness run SUITE --model M` stores one.")
    st.stop()

c1, c2, c3, c4 = st.columns(4)
suite = c1.selectbox("suite", [None, *options["suite"]], format_func=lambda v: "any" if v is None else v, key="lb_suite")
model = c2.selectbox("model", [None, *options["model"]], format_func=lambda v: "any" if v is None else v, key="lb_model")
tag = c3.selectbox("tag", [None, *options["tag"]], format_func=lambda v: "any" if v is None else v, key="lb_tag")
status = c4.selectbox("status", [None, *options["status"]], format_func=lambda v: "any" if v is None else v, key="lb_status")
d1, d2, d3, d4 = st.columns(4)
since = d1.date_input("from", value=None, key="lb_since")
until = d2.date_input("until", value=None, key="lb_until")
filters = queries.RunFilter(suite=suite, model=model, tag=tag, since=since, until=until, status=status)

names = queries.metric_names(store, filters)
sort_by = d3.selectbox("sort by", ["created_at", "name", "model", "suite", "status", "n_samples", *names], key="lb_sort")
descending = d4.toggle("descending", value=True, key="lb_desc")
shown = st.multiselect("metric columns", names, default=[n for n in names if "/" not in n] or names, key="lb_metrics")

table = st.container()
offset = ui.pager("leaderboard_page", queries.count_runs(store, filters), PAGE_SIZE)
page = queries.leaderboard(store, filters, sort_by=sort_by, descending=descending, offset=offset, limit=PAGE_SIZE)
if page.total == 0:
    table.warning("No run matches these filters.")
    st.stop()

frame = page.frame.copy()
frame.insert(0, "open", [f"./run?run={r}" for r in frame["run_id"]])
wanted = {f"metric:{n}" for n in shown}
with table:
    # One table per suite: a suite's metrics mean nothing for another suite's runs (no empty "None" columns),
    # and each suite's headline metric gets its own chart.
    for suite_name, group in frame.groupby("suite", sort=True):
        group = group.dropna(axis="columns", how="all")
        available = [c.removeprefix("metric:") for c in group.columns if c.startswith("metric:")]
        headline = primary_metric(str(suite_name), available)
        keep = wanted | ({f"metric:{headline}"} if headline else set())
        group = group.drop(columns=[c for c in group.columns if c.startswith("metric:") and c not in keep])
        metric_columns = sorted((c for c in group.columns if c.startswith("metric:")),
                                key=lambda c: (c != f"metric:{headline}", c))
        st.markdown(f"**{suite_name}** · {len(group)} run(s) on this page" + (f" · headline: `{headline}`" if headline else ""))
        st.dataframe(
            group,
            hide_index=True,
            width="stretch",
            column_order=["open", "name", *metric_columns, "model", "adapter", "status", "n_samples", "created_at", "tags",
                          "backend", "run_id"],
            column_config={
                "open": st.column_config.LinkColumn("open", display_text="open run"),
                "run_id": st.column_config.TextColumn("run"),
                "created_at": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
                **{c: st.column_config.NumberColumn(c.removeprefix("metric:"), format="%.4f") for c in metric_columns},
            },
        )
        if headline and group[f"metric:{headline}"].notna().sum() > 1:
            st.plotly_chart(charts.leaderboard_bar(group, headline), width="stretch", key=f"bar_{suite_name}")

st.subheader("Open a run")
labels = {r["run_id"]: ui.run_label(r) for r in frame.to_dict("records")}
ids = list(labels)
chosen = st.selectbox("run", ids, format_func=lambda r: labels[r], key="open_run")
below = ids[ids.index(chosen) + 1] if ids.index(chosen) + 1 < len(ids) else ids[max(0, ids.index(chosen) - 1)]
a, b = st.columns(2)
a.page_link("views/run.py", label="Open this run", icon=":material/search:", query_params={"run": chosen})
b.page_link("views/compare.py", label=f"Compare it with {labels[below].split(' · ')[0]} (the next run in the table)",
            icon=":material/compare_arrows:", query_params={"a": below, "b": chosen})
