"""The department confusion of an evaluation: the plot (names and counts in the cells) and the table
of the most frequent confusions for ``report.md``.

Department names are Chinese, so the plot needs a CJK font. It is looked up among the installed
fonts through matplotlib's font manager (``make fonts`` installs Debian's fonts-wqy-microhei, the
way ``make browser`` installs chromium); ``HOTLINE_REPORT_FONT`` names another family, or ``none``.
Without one the plot falls back to short labels D1…Dn, ``labels.json`` holds the legend, and the
report says so: matplotlib would otherwise draw every name as empty boxes.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# Families that cover simplified Chinese, most common first on Debian/Ubuntu, then macOS and Windows.
CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
    "Droid Sans Fallback", "AR PL UMing CN", "PingFang SC", "Heiti SC", "Microsoft YaHei", "SimHei",
)
FONT_HINT = "install one with `make fonts` (Debian: apt-get install fonts-wqy-microhei) or set HOTLINE_REPORT_FONT"


def cjk_font(preferred: str | None = None) -> str | None:
    """The family to draw Chinese with: ``preferred`` if installed (``"none"``: no CJK font), else the
    first installed of :data:`CJK_FAMILIES`; None when there is none."""
    from matplotlib import font_manager

    if preferred and preferred.strip().lower() == "none":
        return None
    installed = {f.name for f in font_manager.fontManager.ttflist}
    if preferred:
        if preferred in installed:
            return preferred
        logger.warning("HOTLINE_REPORT_FONT=%r is not an installed font; looking for another CJK font", preferred)
    return next((f for f in CJK_FAMILIES if f in installed), None)


def display_names(labels: list[str], names: dict[str, str]) -> list[str]:
    """What to call each department in tables: its name, with the code when they differ
    (``治安 (police_public_order)``); a city's own labels are names already."""
    out = []
    for code in labels:
        name = names.get(code) or code
        out.append(name if name == code else f"{name} ({code})")
    return out


def confusion_counts(y: list[str], p: list[str], labels: list[str]) -> np.ndarray:
    """(n_labels, n_labels) counts; rows true, columns predicted, in ``labels`` order."""
    index = {l: i for i, l in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=int)
    for a, b in zip(y, p):
        m[index[a], index[b]] += 1
    return m


def top_confusions(matrix: np.ndarray, labels: list[str], names: dict[str, str], limit: int = 15) -> list[dict]:
    """The most frequent (true, predicted) pairs off the diagonal, with the share of the true department's calls."""
    shown = dict(zip(labels, display_names(labels, names)))
    support = matrix.sum(axis=1)
    pairs = [(int(matrix[i, j]), i, j) for i in range(len(labels)) for j in range(len(labels)) if i != j and matrix[i, j]]
    pairs.sort(key=lambda t: (-t[0], labels[t[1]], labels[t[2]]))
    return [
        {"true": labels[i], "predicted": labels[j], "true_name": shown[labels[i]], "predicted_name": shown[labels[j]],
         "count": c, "share_of_true": round(c / support[i], 4)}
        for c, i, j in pairs[:limit]
    ]


def confusion_table(rows: list[dict]) -> list[str]:
    """Markdown lines of :func:`top_confusions` (empty list when nothing was confused)."""
    if not rows:
        return ["No department was confused with another."]
    lines = ["| true department | predicted department | count | share of the true department's calls |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['true_name']} | {r['predicted_name']} | {r['count']} | {r['share_of_true']:.1%} |" for r in rows]
    return lines


def draw_department_confusion(path: Path, matrix: np.ndarray, labels: list[str], names: dict[str, str], font: str | None):
    """Draw the confusion matrix with department names (``font``) or D1…Dn (no font) and every non-zero
    count in its cell; returns (tick labels, whether they are the short D1…Dn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [names.get(c) or c for c in labels]
    if len(set(shown)) < len(shown):  # two departments with one name: add the codes
        shown = display_names(labels, names)
    short = font is None and not all(s.isascii() for s in shown)
    ticks = [f"D{i + 1}" for i in range(len(labels))] if short else shown
    n = len(labels)
    size = max(6.0, 0.42 * n + 3)
    cell_font = max(5, min(10, int(220 / max(n, 1))))
    with plt.rc_context({"font.family": [font, "sans-serif"]} if font else {}):
        fig, ax = plt.subplots(figsize=(size, size))
        ax.imshow(matrix, cmap="Blues", interpolation="nearest")
        top = matrix.max() or 1
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=cell_font,
                            color="white" if matrix[i, j] > top / 2 else "black")
        ax.set_xticks(range(n), ticks, rotation=90, fontsize=cell_font + 1)
        ax.set_yticks(range(n), ticks, fontsize=cell_font + 1)
        ax.set_xlabel("predicted department")
        ax.set_ylabel("true department")
        ax.set_title("Department confusion (rows: true; counts)")
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
    return ticks, short
