"""The model card's figure tables, written from an artefact's metadata: one source for both.

`python -m ml card --model DIR` prints them; `models/MODEL_CARD.md` holds the active
model's between the markers below, and a test checks that the two agree.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

BEGIN = "<!-- figures: written by `python -m ml card`; do not edit by hand -->"
END = "<!-- end of figures -->"
PACKAGE_PREFIX = "package:"


def figure_tables(metadata: dict[str, Any]) -> str:
    """Markdown tables of the validation figures, probes, decision rule and guard."""
    parts = [BEGIN, f"Figures of `{metadata['version']}`.", ""]
    evaluation = metadata.get("evaluation") or {}
    if sources := evaluation.get("sources"):
        parts += [*_source_table(sources), "", *_probe_table(sources), ""]
    if decision := metadata.get("decision"):
        parts += [*_decision_lines(decision), ""]
    if guard := metadata.get("guard"):
        parts += [*_guard_tables(guard), ""]
    parts.append(END)
    return "\n".join(parts)


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _source_table(sources: dict[str, Any]) -> list[str]:
    lines = [
        "| Source (validation part) | Images | Accuracy | Macro-F1 | ECE | Tumours called "
        "no tumour | ... of them not flagged | Needs review |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, figures in sources.items():
        miss = figures["tumour_miss"]
        lines.append(
            f"| {name} | {figures['n']} | {figures['accuracy']:.3f} | {figures['macro_f1']:.3f} "
            f"| {figures['ece']:.3f} | {_percent(miss['overall'])} ({miss['missed']} of "
            f"{miss['tumours']}) | {_percent(miss['unflagged'])} "
            f"| {_percent(figures['needs_review'])} |"
        )
    return lines


def _probe_table(sources: dict[str, Any]) -> list[str]:
    lines = [
        "| Sequence probe | Source | Accuracy | Tumours called no tumour (glioma / meningioma "
        "/ pituitary) | ... not flagged |",
        "|---|---|---|---|---|",
    ]
    for name, figures in sources.items():
        for probe, probed in figures["probes"].items():
            miss = probed["tumour_miss"]
            per_class = " / ".join(_percent(rate) for rate in miss["per_class"].values())
            lines.append(
                f"| {probe} | {name} | {probed['accuracy']:.3f} | {_percent(miss['overall'])} "
                f"({per_class}) | {_percent(miss['unflagged'])} |"
            )
    return lines


def _decision_lines(decision: dict[str, Any]) -> list[str]:
    figures = decision.get("figures", {})
    return [
        f"Decision rule: temperature {decision['temperature']:.3f} (ECE on the calibration "
        f"part {figures.get('calibration_ece_before', float('nan')):.3f} before, "
        f'{figures.get("calibration_ece_after", float("nan")):.3f} after); "no tumour" is '
        f'answered without "needs review" only at p(no tumour) >= '
        f"{decision['no_tumor_threshold']:.3f} (target: at most "
        f"{_percent(figures.get('target_miss_rate', 0.0))} of calibration tumours, probes "
        f"included, unflagged); any answer below {decision['review_threshold']:.3f} "
        "confidence needs review."
    ]


def _guard_tables(guard: dict[str, Any]) -> list[str]:
    figures = guard.get("figures") or {}
    lines = [
        f"Guard: cut-off {guard['threshold']:.3f} on its score, colour above "
        f"{guard['max_colourfulness']:.2f}, contrast below {guard['min_contrast']:.1f}.",
        "",
        "| Brain MRI slices wrongly refused (validation part) | Refused | Rate |",
        "|---|---|---|",
    ]
    for name, row in (figures.get("false_refusals") or {}).items():
        lines.append(f"| {name} | {row['refused']} of {row['images']} | {_percent(row['rate'])} |")
    grouped: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    missed_packages = []
    for kind, row in (figures.get("caught") or {}).items():
        key = "pictures shipped in Python packages" if kind.startswith(PACKAGE_PREFIX) else kind
        grouped[key][0] += row["caught"]
        grouped[key][1] += row["images"]
        if kind.startswith(PACKAGE_PREFIX) and row["caught"] < row["images"]:
            missed_packages.append(kind.removeprefix(PACKAGE_PREFIX))
    lines += [
        "",
        "| Not a brain MRI slice (images not trained on) | Caught | Rate |",
        "|---|---|---|",
    ]
    for kind, (caught, images) in sorted(grouped.items()):
        lines.append(f"| {kind} | {caught} of {images} | {_percent(caught / max(1, images))} |")
    if "catch_rate" in figures:
        lines.append(f"| **all** | | **{_percent(figures['catch_rate'])}** |")
    if missed_packages:
        lines += ["", "Package pictures let through: " + ", ".join(sorted(missed_packages)) + "."]
    return lines


def card_figures(card_text: str) -> str:
    """The figures block of a model card, markers included ("" if it has none)."""
    if BEGIN not in card_text or END not in card_text:
        return ""
    start = card_text.index(BEGIN)
    return card_text[start : card_text.index(END, start) + len(END)]
