"""The study's tables (markdown for docs/finetuning.md) and PNG plots (matplotlib, small files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def markdown(report: dict[str, Any]) -> str:
    s, e, r = report["search"]["report"], report["efficiency"]["report"], report["rag"]
    plan, t = report["plan"], report["timings"]
    lines = [
        f"Model `{Path(plan['model']).name}`, LoRA r=8; validation: attribute-extraction, first {plan['val_limit']} samples, "
        f"field F1 ({plan['val_tokens']} new tokens); wall time {t['total_s'] / 60:.1f} min "
        f"(sweep {t['search_s'] / 60:.1f}, curve {t['efficiency_s'] / 60:.1f}, RAG {t['rag_s'] / 60:.1f}); load average "
        f"{report['load_average_start'][0]:.1f} at start, {report['load_average_end'][0]:.1f} at end, {report['cpu_count']} cores.",
        "",
        f"**1. Early judging** ({s['n_trials']} trials x {plan['max_steps']} steps, judged at step "
        f"{sorted(set(s['early_steps'].values()))} = {plan['early_fraction']:.0%}):",
        "",
        "| trial | params | early F1 | early loss | final F1 |",
        "|---|---|---|---|---|",
    ]
    for trial in report["search"]["trials"]:
        lines.append(f"| {trial['number']} | {_params(trial['params'])} | {_f(trial['early_score'])} | {_f(trial['early_loss'])} | "
                     f"{_f(trial['final_score'])} |")
    lines += [
        "",
        "| measure | value |",
        "|---|---|",
        f"| Spearman early vs final | {_f(s['spearman_early_final'])} |",
        f"| Kendall early vs final | {_f(s['kendall_early_final'])} |",
        f"| top-{s['top_k']} overlap | {_f(s['top_k_overlap'])} |",
        f"| early winner / final winner | {_f(s['early_winner'])} / {_f(s['final_winner'])} "
        f"(same: {_f(s['early_winner_is_final_winner'])}) |",
        f"| Spearman early loss vs final F1 | {_f(s['spearman_early_loss_final'])} |",
        f"| cut keeps (1/{plan['reduction_factor']}) | trials {s['cut_kept_trials']}; fell in a tie: {_f(s['cut_fell_in_tie'])}; "
        f"kept the final winner: {_f(s['cut_kept_final_winner'])}; kept a trial with the best final score: "
        f"{_f(s.get('cut_kept_a_final_best'))} |",
        f"| steps: full budget / with the cut / saved | {s['steps_full_budget']} / {s['steps_with_cut']} / {s['steps_saved_by_cut']} |",
        "",
        f"**2. Data efficiency** (recipe of trial {s['best_trial']}: {_params(s['best_params'] or {})}; "
        f"{plan['size_epochs']:g} epochs per size):",
        "",
        "| training samples | field F1 | stderr |",
        "|---|---|---|",
    ]
    lines += [f"| {p['n']} | {_f(p['score'])} | {_f(p['stderr'])} |" for p in e["points"]]
    interval = e["saturation_interval_90"]
    lines += [
        "",
        f"Saturation ({e['target']:.0%} of the fitted gain): {_f(e['saturation_n'], 0)} samples, 90% bootstrap interval "
        f"{'undefined' if interval is None else f'{interval[0]:.0f}-{interval[1]:.0f}'}."
        + ("" if not e["notes"] else " Notes: " + "; ".join(e["notes"]) + "."),
        "",
        f"**3. RAG check** (`{r['command']}`, {Path(str(r['data'])).name}, {plan['rag_limit']} questions): "
        f"alarm: {_f(r.get('alarm'))}.",
        "",
        "| check | statistic | value | p (Holm) | alarm |",
        "|---|---|---|---|---|",
    ]
    for finding in r.get("findings", []):
        lines.append(f"| {finding['name']} | {finding['statistic']} | {_f(finding['value'])} | {_f(finding['p_value'])} | "
                     f"{_f(finding['alarm'])} |")
    worst = (r.get("summary") or {}).get("worst") or []
    if worst:
        lines += ["", "Worst regressions:", "", "| question | gold | base | tuned |", "|---|---|---|---|"]
        for w in worst[:5]:
            gold = " / ".join(g for g in w["gold"] if g) or "(unanswerable)"
            lines.append(f"| {w['question'][:70]} | {gold[:30]} | {(w['baseline'] or '(abstained)')[:40]} | "
                         f"{(w['candidate'] or '(abstained)')[:40]} |")
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def plots(report: dict[str, Any], steps_of: dict[int, list[dict[str, Any]]], out: Path) -> list[str]:
    """early_vs_final.png, loss_curves.png, data_efficiency.png (small: 5x3.5 in at 80 dpi)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from harness.finetune.efficiency import saturating

    written = []
    trials = report["search"]["trials"]
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=80)
    for t in trials:
        if t["early_score"] is not None and t["final_score"] is not None:
            ax.scatter(t["early_score"], t["final_score"], color="tab:blue")
            ax.annotate(_params(t["params"]).replace("learning_rate=", "lr ").replace("batch_size=", "bs "),
                        (t["early_score"], t["final_score"]), fontsize=6)
    ax.set_xlabel("field F1 at the early point")
    ax.set_ylabel("final field F1")
    ax.set_title(f"early vs final (Spearman {_f(report['search']['report']['spearman_early_final'], 2)})", fontsize=9)
    written.append(_save(fig, out / "early_vs_final.png"))

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=80)
    for t in trials:
        rows = [s for s in steps_of.get(t["number"], []) if s["loss"] is not None]
        ax.plot([s["step"] for s in rows], [s["loss"] for s in rows], linewidth=1, label=_params(t["params"]))
    early_steps = sorted(set(report["search"]["report"]["early_steps"].values()))
    for step in early_steps:
        ax.axvline(step, color="grey", linestyle=":")
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=5)
    ax.set_title("training loss (dotted: early point)", fontsize=9)
    written.append(_save(fig, out / "loss_curves.png"))

    e = report["efficiency"]["report"]
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=80)
    n = [p["n"] for p in e["points"]]
    ax.errorbar(n, [p["score"] for p in e["points"]], yerr=[p["stderr"] for p in e["points"]], fmt="o", capsize=3)
    if e["fit"]:
        grid = np.linspace(0, max(n), 200)
        ax.plot(grid, saturating(grid, e["fit"]["a"], e["fit"]["b"], e["fit"]["tau"]), color="tab:orange")
        ax.axvline(e["saturation_n"], color="tab:orange", linestyle=":")
        if e["saturation_interval_90"]:
            ax.axvspan(*e["saturation_interval_90"], color="tab:orange", alpha=0.15)
    ax.set_xlabel("training samples")
    ax.set_ylabel("field F1")
    ax.set_title("data efficiency (dotted: saturation, band: 90% interval)", fontsize=9)
    written.append(_save(fig, out / "data_efficiency.png"))
    return written


def _save(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)
