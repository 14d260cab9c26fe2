"""Plotly figures built from the frames in `dashboards.queries` (no store access, no Streamlit)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def _err(frame: pd.DataFrame, value: str = "value") -> dict[str, object]:
    """Asymmetric error bars from ci_low/ci_high (none where the interval is unknown)."""
    high = (frame["ci_high"] - frame[value]).astype(float)
    low = (frame[value] - frame["ci_low"]).astype(float)
    return {"type": "data", "symmetric": False, "array": high.tolist(), "arrayminus": low.tolist(), "visible": True}


def leaderboard_bar(frame: pd.DataFrame, metric: str) -> go.Figure:
    """The headline metric of the runs on the current leaderboard page."""
    column = f"metric:{metric}"
    data = frame[["name", "run_id", column]].dropna()
    labels = [f"{n} ({r[:6]})" for n, r in zip(data["name"], data["run_id"], strict=True)]
    fig = go.Figure(go.Bar(x=labels, y=data[column].astype(float), marker_color="#4C78A8"))
    fig.update_layout(title=metric, yaxis_title=metric, height=340, margin={"t": 40, "b": 10})
    return fig


def metric_ci_bars(frame: pd.DataFrame) -> go.Figure:
    """A run's metrics with 95% intervals (horizontal, one bar per metric)."""
    fig = go.Figure(
        go.Bar(x=frame["value"].astype(float), y=frame["metric"], orientation="h", error_x=_err(frame) | {"type": "data"},
               marker_color="#4C78A8")
    )
    fig.update_layout(height=max(260, 26 * len(frame)), margin={"t": 20, "l": 10}, xaxis_title="value (95% CI)")
    fig.update_yaxes(autorange="reversed")
    return fig


def delta_forest(frame: pd.DataFrame) -> go.Figure:
    """Metric deltas b - a with 95% intervals, coloured by verdict (a forest plot)."""
    data = frame.dropna(subset=["delta"])
    colours = {"improved": "#2CA02C", "regressed": "#D62728"}
    marker = [colours.get(str(v), "#7F7F7F") for v in data["verdict"]]
    fig = go.Figure(
        go.Scatter(
            x=data["delta"].astype(float), y=data["metric"], mode="markers", marker={"color": marker, "size": 10},
            error_x=_err(data.rename(columns={"delta": "value"})), text=data["verdict"], hovertemplate="%{y}: %{x:.4f} (%{text})",
        )
    )
    fig.add_vline(x=0, line_dash="dash", line_color="#999")
    fig.update_layout(height=max(260, 26 * len(data)), margin={"t": 20, "l": 10}, xaxis_title="delta b - a (95% CI)")
    fig.update_yaxes(autorange="reversed")
    return fig


def checkpoint_curves(metric_frame: pd.DataFrame, dynamics: pd.DataFrame, metric_names: Sequence[str]) -> go.Figure:
    """Metrics against training step (left axis) overlaid with loss and gradient norm (right axes)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for name in metric_names:
        series = metric_frame[metric_frame["metric"] == name].sort_values("step")
        if series.empty:
            continue
        fig.add_trace(
            go.Scatter(x=series["step"], y=series["value"].astype(float), name=name, mode="lines+markers", error_y=_err(series)),
            secondary_y=False,
        )
    if not dynamics.empty:
        if dynamics["loss"].notna().any():
            fig.add_trace(
                go.Scatter(x=dynamics["step"], y=dynamics["loss"], name="train loss", mode="lines", line={"color": "#888", "dash": "dot"}),
                secondary_y=True,
            )
        if dynamics["grad_norm"].notna().any():
            fig.add_trace(
                go.Scatter(x=dynamics["step"], y=dynamics["grad_norm"], name="grad norm", mode="lines", yaxis="y3",
                           line={"color": "#E4A11B", "width": 1})
            )
            fig.update_layout(yaxis3={"title": "grad norm", "overlaying": "y", "side": "right", "anchor": "free",
                                      "autoshift": True, "showgrid": False})
    fig.update_layout(height=460, margin={"t": 30}, xaxis_title="training step", legend={"orientation": "h", "y": -0.2})
    fig.update_yaxes(title_text="metric (95% CI)", secondary_y=False)
    fig.update_yaxes(title_text="train loss", secondary_y=True, showgrid=False)
    return fig


def drift_lines(series: pd.DataFrame) -> go.Figure:
    """Small multiples: one panel (and y-axis) per statistic, since McNemar counts, CUSUM values and PSI
    share no scale; within a panel one line per check and subject (never joining different series),
    its threshold dashed and its alarms marked."""
    statistics = sorted(str(s) for s in series["statistic"].fillna("value").unique())
    fig = make_subplots(rows=max(1, len(statistics)), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=statistics)
    for row, statistic in enumerate(statistics, start=1):
        panel = series[series["statistic"].fillna("value") == statistic]
        for (name, subject), group in panel.groupby(["name", "subject"], sort=True):
            label = f"{name} · {subject}"
            fig.add_trace(go.Scatter(x=group["created_at"], y=group["value"], name=label, mode="lines+markers",
                                     legendgroup=label), row=row, col=1)
            alarmed = group[group["alarm"].astype(bool)]
            if not alarmed.empty:
                fig.add_trace(go.Scatter(x=alarmed["created_at"], y=alarmed["value"], mode="markers", showlegend=False,
                                         name=f"{label} alarm", legendgroup=label,
                                         marker={"symbol": "x", "size": 12, "color": "#D62728"}), row=row, col=1)
            if group["threshold"].notna().any():
                fig.add_trace(go.Scatter(x=group["created_at"], y=group["threshold"], mode="lines", showlegend=False,
                                         name=f"{label} threshold", legendgroup=label,
                                         line={"dash": "dash", "width": 1, "color": "#999"}), row=row, col=1)
    fig.update_layout(height=max(320, 240 * len(statistics)), margin={"t": 40}, legend={"orientation": "h", "y": -0.12})
    return fig


def score_drift_chart(item: dict[str, object]) -> go.Figure:
    """A score-drift check: the metric per run with its reference level, the detected change point and
    the first alarming run (top), and the CUSUM against its alarm threshold h (bottom)."""
    labels = [str(v) for v in item["labels"]]  # type: ignore[attr-defined]
    runs = [str(r) for r in item["runs"]]  # type: ignore[attr-defined]
    x = list(range(1, len(runs) + 1))  # run positions: two runs may share a label (same minute, same step)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12, row_heights=[0.6, 0.4],
                        subplot_titles=[str(item["metric"]), "CUSUM of the drop (standard errors)"])
    hover = [f"{label} (run {run})" for label, run in zip(labels, runs, strict=True)]
    fig.add_trace(go.Scatter(x=x, y=item["values"], mode="lines+markers", name=str(item["metric"]), text=hover,
                             hovertemplate="%{text}: %{y:.4f}"), row=1, col=1)
    fig.add_hline(y=float(item["reference_mean"]), line_dash="dot", line_color="#999", row=1, col=1,  # type: ignore[arg-type]
                  annotation_text="reference level")
    fig.add_trace(go.Scatter(x=x, y=item["cusum"], mode="lines+markers", name="CUSUM", line={"color": "#E4A11B"},
                             text=hover, hovertemplate="%{text}: %{y:.2f}"), row=2, col=1)
    if item.get("threshold") is not None:
        fig.add_hline(y=float(item["threshold"]), line_dash="dash", line_color="#D62728", row=2, col=1,  # type: ignore[arg-type]
                      annotation_text=f"alarm threshold h={float(item['threshold']):g}")  # type: ignore[arg-type]
    for key, text, colour, anchor in (("change_run", "change point", "#7F7F7F", "right"),
                                      ("first_alarm_run", "first alarm", "#D62728", "left")):
        run = item.get(key)
        if run in runs:
            at = runs.index(str(run)) + 1
            fig.add_vline(x=at, line_dash="dash", line_color=colour, line_width=1)
            fig.add_annotation(x=at, y=1.0, xref="x", yref="paper", text=text, showarrow=False, font={"color": colour},
                               xanchor=anchor, yanchor="bottom")
    step = max(1, len(x) // 12)
    fig.update_xaxes(tickvals=x[::step], ticktext=labels[::step], row=2, col=1)
    fig.update_xaxes(title_text="run (oldest first)", row=2, col=1)
    fig.update_layout(height=460, margin={"t": 50}, showlegend=False)
    return fig


def early_final_scatter(trials: pd.DataFrame) -> go.Figure:
    """Early score (judged at a fraction of the budget) against final score, one point per trial.

    Pruned trials have no final score and are left out of the plot (the page counts them)."""
    fig = go.Figure()
    for state, group in trials.dropna(subset=["early_score", "final_score"]).groupby("state", sort=True):
        fig.add_trace(
            go.Scatter(x=group["early_score"], y=group["final_score"], mode="markers", name=str(state), text=group["number"].astype(str),
                       hovertemplate="trial %{text}: early %{x:.4f}, final %{y:.4f}", marker={"size": 10})
        )
    fig.update_layout(height=400, margin={"t": 30}, xaxis_title="early score", yaxis_title="final score")
    return fig


def efficiency_curve(curve: pd.DataFrame) -> go.Figure:
    """Final score against the number of training samples, with standard-error bars."""
    fig = go.Figure(
        go.Scatter(x=curve["n_train_samples"], y=curve["mean"], mode="lines+markers",
                   error_y={"type": "data", "array": curve["stderr"].fillna(0).tolist(), "visible": True})
    )
    fig.update_layout(height=380, margin={"t": 30}, xaxis_title="training samples", yaxis_title="final score", xaxis_type="log")
    return fig
