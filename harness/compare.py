"""`harness compare` reports: markdown tables of a `harness.comparison.RunComparison` (per metric
both values, the difference with its paired interval, a two-sided p-value, flips and the samples
that regressed most). The numbers come from the comparison engine (`harness/comparison/`), the
same one behind the gate, `monitor rag` and the board.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.comparison import RunComparison

# ---- markdown -----------------------------------------------------------------------------------


def to_markdown(comparisons: Sequence[RunComparison], problems: Sequence[str] = ()) -> str:
    """Markdown tables of every compared suite (for PR comments and step summaries)."""
    lines = ["## harness compare", ""]
    for comp in comparisons:
        lines += [
            f"### {comp.suite}: `{comp.baseline_run}` → `{comp.candidate_run}` ({len(comp.pairing.common)} paired samples)",
            "",
            "Mean metrics: paired test on per-sample scores; corpus metrics (BLEU, chrF, TER): paired bootstrap "
            "over segments. Flips of a corpus metric count its sentence-level score.",
            "",
            "| metric | baseline | candidate | Δ (95% CI) | p (two-sided) | test | improved | regressed | unchanged | n |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for m in comp.metrics:
            arrow = "↑" if m.higher_is_better else "↓"
            lines.append(
                f"| {m.metric} {arrow} | {m.baseline:.4f} | {m.candidate:.4f} | {m.delta:+.4f} [{m.ci.low:+.4f}, {m.ci.high:+.4f}] "
                f"| {m.test.p_value:.3g} | {m.test.method} | {m.improved} | {m.regressed} | {m.unchanged} | {m.n} |"
            )
        for p in comp.problems:
            lines.append(f"\n- ⚠️ {p}")
        if comp.worst:
            lines += ["", f"Worst regressions on `{comp.worst_metric}`:", ""]
            for w in comp.worst:
                lines.append(
                    f"- `{w.sample_id}` (worse by {w.worse_by:.4g}) prompt: {md_quote(w.prompt)}; gold: {md_quote(w.gold)}; "
                    f"baseline: {md_quote(w.baseline_completion)}; candidate: {md_quote(w.candidate_completion)}"
                )
        lines.append("")
    for p in problems:
        lines.append(f"- ⚠️ {p}")
    return "\n".join(lines).rstrip() + "\n"


def shorten(text: str, limit: int = 200) -> str:
    """One line of at most `limit` characters keeping both ends: prompts put the instructions first
    and the question last, and a reader needs the question."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = limit // 3
    return text[:head] + " … " + text[-(limit - head - 3) :]


def md_quote(text: str, limit: int = 200) -> str:
    return "`" + shorten(text, limit).replace("`", "'") + "`"
