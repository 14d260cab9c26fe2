"""Every board page through Streamlit's AppTest, on a store filled by real runs, and on an empty store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from harness.store import Store
from tests.board_data import RUN_NAMES, fill_board_store

APP = Path(__file__).resolve().parent.parent / "dashboards" / "app.py"
PAGES = ("leaderboard", "run", "compare", "checkpoints", "drift", "sweeps")


@pytest.fixture(scope="module")
def filled(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("board_app")
    url = f"sqlite:///{tmp / 'board.db'}"
    return {"url": url, **fill_board_store(url, tiny_model, tmp)}


@pytest.fixture
def app(filled: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    monkeypatch.setenv("HARNESS_BOARD_DB", filled["url"])
    yield AppTest.from_file(str(APP), default_timeout=60)


def _open(at: AppTest, page: str, **params: str) -> AppTest:
    at.run()
    if page != "leaderboard":
        at.switch_page(f"views/{page}.py")
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _charts(at: AppTest) -> list[Any]:
    return list(at.get("plotly_chart"))


def _text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [str(i.value) for i in at.info]
    return "\n".join(str(p) for p in parts)


def test_leaderboard_lists_every_run_with_metrics_and_filters_by_tag(app: AppTest) -> None:
    at = _open(app, "leaderboard")
    assert at.title[0].value == "Leaderboard"
    frame = at.dataframe[0].value
    assert set(frame["name"]) == set(RUN_NAMES)
    assert {"metric:f1", "metric:exact_match"} <= set(frame.columns)
    assert all(link.startswith("./run?run=") for link in frame["open"])
    assert _charts(at), "the headline-metric bar chart is missing"
    assert "metric:answerable/f1" not in frame.columns  # group metrics are opt-in columns
    at.multiselect(key="lb_metrics").select("answerable/f1").run()
    assert "metric:answerable/f1" in at.dataframe[0].value.columns
    at.selectbox(key="lb_tag").select("candidate").run()
    assert set(at.dataframe[0].value["name"]) == {"gold-even", "gold-mixed"}
    at.selectbox(key="lb_sort").select("f1").run()  # descending by default
    assert list(at.dataframe[0].value["name"]) == ["gold-even", "gold-mixed"]
    at.toggle(key="lb_desc").set_value(False).run()
    assert list(at.dataframe[0].value["name"]) == ["gold-mixed", "gold-even"]
    at.date_input(key="lb_until").set_value(dt.date(2020, 1, 1)).run()
    assert at.warning and "No run matches" in at.warning[0].value


def test_run_page_shows_metrics_with_intervals_provenance_and_searchable_samples(app: AppTest, filled: dict[str, Any]) -> None:
    at = _open(app, "run", run=filled["even"])
    assert "gold-even" in _text(at)
    metrics = at.dataframe[0].value
    f1 = metrics.set_index("metric").loc["f1"]
    assert f1["ci_low"] < f1["value"] < f1["ci_high"]
    assert _charts(at)
    provenance = at.table[0].value
    assert "config_hash" in set(provenance["field"])
    samples = at.dataframe[1].value
    assert len(samples) == 10 and {"prompt", "completion", "score"} <= set(samples.columns)
    at.text_input[0].input("Eiffel").run()
    assert set(at.dataframe[1].value["sample_id"]) == {"rag-001", "rag-002"}


def test_compare_page_charts_deltas_and_lists_regressions_first(app: AppTest, filled: dict[str, Any]) -> None:
    at = _open(app, "compare", a=filled["even"], b=filled["mixed"])
    assert _charts(at), "the delta chart is missing"
    paired = at.dataframe[0].value.set_index("metric")  # the page leads with the paired result the gate uses
    assert paired.loc["f1", "delta"] == pytest.approx(-0.1) and paired.loc["exact_match", "test"] == "mcnemar-exact"
    assert "verdict" in paired.columns and len(at.dataframe) == 2  # no unpaired table
    flips = at.dataframe[1].value
    assert list(flips["kind"]) == ["regression"] * 3 + ["improvement"] * 2
    assert [m.value for m in at.metric][:3] == ["10", "3", "2"]
    first = flips.iloc[0]
    assert at.selectbox(key="flip_detail").value == first["sample_id"]
    assert [t.value for t in at.text_area] == [first["prompt"], first["completion_a"], first["completion_b"]]


def test_checkpoints_page_plots_metrics_against_step_with_training_dynamics(app: AppTest, filled: dict[str, Any]) -> None:
    at = _open(app, "checkpoints")
    chart = _charts(at)[0]
    names = {trace["name"] for trace in _figure(chart)["data"]}
    assert {"train loss", "grad norm"} <= names and "f1" in names
    scores = at.dataframe[0].value
    assert list(scores[scores["metric"] == "f1"]["step"]) == [10, 20]


def test_drift_page_shows_history_findings_and_alarms(app: AppTest) -> None:
    at = _open(app, "drift")
    assert _charts(at)
    history, findings, alarm_frame = (d.value for d in at.dataframe)
    assert len(history) == 3 and list(history["n_alarms"]) == [1, 0, 0]
    assert list(findings["name"]) == ["score psi"]
    assert len(alarm_frame) == 1 and "PSI 0.35" in alarm_frame["message"].iloc[0]


def test_sweeps_page_shows_trials_scatter_and_efficiency_curve(app: AppTest) -> None:
    at = _open(app, "sweeps")
    assert len(_charts(at)) == 2
    assert [m.value for m in at.metric][:2] == ["6", "1"]
    curve = at.dataframe[0].value
    assert list(curve["n_train_samples"]) == [100, 400, 1600]


def _figure(chart: Any) -> dict[str, Any]:
    import json

    return dict(json.loads(chart.proto.spec))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_says_nothing_is_stored_yet_on_an_empty_store(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Store(url).close()
    monkeypatch.setenv("HARNESS_BOARD_DB", url)
    at = _open(AppTest.from_file(str(APP), default_timeout=60), page)
    assert at.info and "stored yet" in at.info[0].value
    assert not at.error


def test_a_missing_store_is_a_clear_error_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_BOARD_DB", str(tmp_path / "nope.db"))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    assert "Cannot open the store" in at.error[0].value


def test_board_command_refuses_a_missing_store_with_exit_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harness.cli import app as cli

    result = CliRunner().invoke(cli, ["board", "--db", str(tmp_path / "missing.db")])
    assert result.exit_code == 2 and "cannot open store" in result.output


@pytest.mark.parametrize(
    ("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False), ("10.1.2.3", False)]
)
def test_board_binds_loopback_by_default_and_elsewhere_only_when_asked(host: str, loopback: bool) -> None:
    from harness.commands.board import LOOPBACK, _is_loopback, streamlit_command

    assert LOOPBACK == "127.0.0.1" and _is_loopback(host) is loopback
    line = streamlit_command(8600, host)
    assert line[line.index("--server.address") + 1] == host and line[line.index("--server.port") + 1] == "8600"
    assert line[line.index("--browser.gatherUsageStats") + 1] == "false"
    assert Path(line[4]) == APP



def _pager_app() -> None:
    import streamlit as st

    from dashboards import ui

    offset = ui.pager("p", st.session_state.get("total", 10), 3)
    st.markdown(f"offset={offset}")


def test_pager_pages_and_starts_again_when_the_row_count_shrinks() -> None:
    at = AppTest.from_function(_pager_app).run()
    assert at.markdown[-1].value == "offset=0" and at.number_input[0].max == 4
    at.number_input[0].set_value(4).run()
    assert at.markdown[-1].value == "offset=9"
    at.session_state["total"] = 5  # a search narrowed the rows to two pages
    at.run()
    assert not at.exception and at.markdown[-1].value == "offset=0" and at.number_input[0].max == 2
