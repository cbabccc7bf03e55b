"""Whether a preference-tuned model replaces the model it was tuned from: read from the
evaluation that compared them (evaluate's metrics.json, the new model as "tuned", the old one as
"base"). Pure: a summary in, a verdict out.

The rule a writer can trust: the new model is handed on only when it follows the house styles
better — the interval of (new − old) above zero, not just its point — and when no guarded
quality regressed beyond its interval: fit to held-out stories (perplexity), stopping by
itself, diversity, memorisation and hollow style (a style check satisfied emptily). A metric the
evaluation did not measure is reported as unguarded, never silently passed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

IMPROVED = "style_pass"
# (metric, which direction is worse); each must not move that way beyond its interval.
GUARDS: tuple[tuple[str, str], ...] = (
    ("perplexity", "higher"),
    ("stop_rate", "lower"),
    ("distinct_2", "lower"),
    ("memorised_8gram_share", "higher"),
    ("longest_copied_span", "higher"),
    ("hollow", "higher"),
)


@dataclass(frozen=True)
class Finding:
    metric: str
    label: str
    old: float | None
    new: float | None
    difference: dict[str, Any] | None  # {value, low, high, n} of new − old
    verdict: str  # improved | not improved | regressed | held | not measured


@dataclass(frozen=True)
class Decision:
    accept: bool
    reason: str
    findings: list[Finding] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"accept": self.accept, "reason": self.reason,
                "findings": [f.__dict__ for f in self.findings]}


def _value(row: dict[str, Any], model: str) -> float | None:
    value = ((row.get("values") or {}).get(model) or {}).get("value")
    return float(value) if isinstance(value, (int, float)) else None


def _finding(table: dict[str, Any], metric: str, worse: str | None) -> Finding:
    row = table.get(metric)
    if not row or not isinstance(row.get("difference"), dict):
        return Finding(metric, (row or {}).get("label", metric), None, None, None, "not measured")
    diff = row["difference"]
    low, high = diff.get("low"), diff.get("high")
    old, new = _value(row, "base"), _value(row, "tuned")
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)):
        return Finding(metric, row.get("label", metric), old, new, diff, "not measured")
    if worse is None:  # the metric that must improve (higher is better)
        verdict = "improved" if low > 0 else "not improved"
    elif worse == "higher":
        verdict = "regressed" if low > 0 else "held"
    else:
        verdict = "regressed" if high < 0 else "held"
    return Finding(metric, row.get("label", metric), old, new, diff, verdict)


def decide(summary: dict[str, Any]) -> Decision:
    """Accept the new model ("tuned" in `summary`) over the old ("base") or say why not."""
    table = summary.get("metrics") or {}
    style = _finding(table, IMPROVED, None)
    guards = [_finding(table, metric, worse) for metric, worse in GUARDS]
    findings = [style, *guards]
    if style.verdict == "not measured":
        return Decision(False, "the evaluation has no house-style comparison (no test prompt "
                               "asks for a house style, or no old model was evaluated)", findings)
    regressed = [g for g in guards if g.verdict == "regressed"]
    if style.verdict != "improved":
        d = style.difference or {}
        return Decision(False, f"house style did not improve beyond its interval (new − old "
                               f"{d.get('value', float('nan')):+.3f} "
                               f"[{d.get('low', float('nan')):+.3f}, "
                               f"{d.get('high', float('nan')):+.3f}])", findings)
    if regressed:
        names = ", ".join(f"{g.label} ({g.old:.3g} → {g.new:.3g})" if g.old is not None
                          and g.new is not None else g.label for g in regressed)
        return Decision(False, f"house style improved, but {names} regressed beyond the interval",
                        findings)
    unguarded = [g.metric for g in guards if g.verdict == "not measured"]
    return Decision(True, "house style improved and nothing guarded regressed"
                    + (f" (not measured: {', '.join(unguarded)})" if unguarded else ""), findings)
