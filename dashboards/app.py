"""The board's entry point (`harness board` runs `streamlit run dashboards/app.py`): navigation only."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="harness board", page_icon=":material/monitoring:", layout="wide")

PAGES = [
    st.Page("pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:", url_path="leaderboard", default=True),
    st.Page("pages/run.py", title="Run", icon=":material/search:", url_path="run"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("pages/checkpoints.py", title="Checkpoints", icon=":material/show_chart:", url_path="checkpoints"),
    st.Page("pages/drift.py", title="Drift & alarms", icon=":material/notifications_active:", url_path="drift"),
    st.Page("pages/sweeps.py", title="Sweeps", icon=":material/science:", url_path="sweeps"),
]

st.navigation(PAGES).run()
