"""The board's entry point (`harness board` runs `streamlit run dashboards/app.py`): navigation only.

The page scripts live in `views/`, not `pages/`: Streamlit would serve a `pages/` folder on its own
(bypassing this file and its layout) to a browser whose first request names a page URL.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="harness board", page_icon=":material/monitoring:", layout="wide")

PAGES = [
    st.Page("views/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:", url_path="leaderboard", default=True),
    st.Page("views/run.py", title="Run", icon=":material/search:", url_path="run"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("views/checkpoints.py", title="Checkpoints", icon=":material/show_chart:", url_path="checkpoints"),
    st.Page("views/drift.py", title="Drift & alarms", icon=":material/notifications_active:", url_path="drift"),
    st.Page("views/sweeps.py", title="Sweeps", icon=":material/science:", url_path="sweeps"),
]

st.navigation(PAGES).run()
