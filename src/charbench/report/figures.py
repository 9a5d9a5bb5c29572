"""PNG figures of the report (matplotlib, Agg backend; nothing is shown on screen)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from charbench.contracts import (
    AGENTIC,
    AGENTIC_ANY,
    AGENTIC_FORCED,
    CHAT,
    CHAT_EMAIL,
    DRAFT,
)
from charbench.personas import released_base
from charbench.report.tables import ID_TASK, condition_sort_key

TASK_ORDER: tuple[str, ...] = (CHAT, CHAT_EMAIL, DRAFT, AGENTIC_FORCED, AGENTIC_ANY, AGENTIC)
"""Tasks from most to least chat-like, the order of bars and lines."""
TASK_LABELS: dict[str, str] = {
    CHAT: "ID chat",
    CHAT_EMAIL: "chat email (control)",
    DRAFT: "draft email (control)",
    AGENTIC_FORCED: "agentic email (send_email forced)",
    AGENTIC_ANY: "agentic email (tool call forced)",
    AGENTIC: "agentic email",
}


def base_label(base: str) -> str:
    """Short display name of a base: the released short name or the last path part."""
    released = released_base(base)
    return released.short if released else base.rstrip("/").rsplit("/", 1)[-1]


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:120] or "cell"


def _task_order(tasks: list[str]) -> list[str]:
    known = [t for t in TASK_ORDER if t in tasks]
    return known + sorted(t for t in tasks if t not in TASK_ORDER)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _yerr(frame: pd.DataFrame) -> np.ndarray:
    low = (frame["macro_f1"] - frame["macro_f1_ci_low"]).clip(lower=0).fillna(0)
    high = (frame["macro_f1_ci_high"] - frame["macro_f1"]).clip(lower=0).fillna(0)
    return np.vstack([low.to_numpy(float), high.to_numpy(float)])


def _label_n(ax: Any, xs: np.ndarray, sub: pd.DataFrame) -> None:
    """Write each scored bar's sample count above its CI, so a bar of two emails cannot pass
    for a measurement (a 0.00 bar gets its count too, telling it apart from a missing one)."""
    if "n" not in sub:
        return
    tops = sub["macro_f1_ci_high"].to_numpy(float) if "macro_f1_ci_high" in sub else \
        sub["macro_f1"].to_numpy(float)
    for xi, value, top, n in zip(xs, sub["macro_f1"].to_numpy(float), tops,
                                 sub["n"].to_numpy(float), strict=True):
        if not np.isnan(value) and not np.isnan(n):
            y = (value if np.isnan(top) else max(top, value)) + 0.015
            ax.text(xi, y, f"n={int(n)}", ha="center", va="bottom", fontsize=6.5)


def id_vs_ood(summary: pd.DataFrame, path: Path) -> Path:
    """Grouped bars of macro-F1 (95% CI error bars) per condition, one panel per base.

    Bars are the tasks present (ID chat and each OOD task; agentic bars are the emailed-only
    macro-F1); a dashed line marks chance (``1 / len(personas)``).
    """
    bases = sorted(summary["base"].unique())
    fig, axes = plt.subplots(1, len(bases), figsize=(5.5 * len(bases), 4.2), squeeze=False)
    tasks = _task_order(list(summary["task"].unique()))
    width = 0.8 / max(len(tasks), 1)
    for ax, base in zip(axes[0], bases, strict=True):
        frame = summary[summary["base"] == base]
        conditions = sorted(frame["condition"].unique(), key=condition_sort_key)
        x = np.arange(len(conditions))
        for i, task in enumerate(tasks):
            sub = frame[frame["task"] == task].set_index("condition").reindex(conditions)
            xs = x + (i - (len(tasks) - 1) / 2) * width
            values = sub["macro_f1"].to_numpy(float)
            ax.bar(
                xs, values, width, yerr=_yerr(sub), capsize=3, label=TASK_LABELS.get(task, task)
            )
            # a missing bar must not pass for a zero: say why there is none
            emailed = (
                sub["n_emailed"].to_numpy(float)
                if "n_emailed" in sub
                else np.full(len(sub), np.nan)
            )
            present = sub["n"].notna().to_numpy() if "n" in sub else np.ones(len(sub), bool)
            for xi, value, n_mail, has in zip(xs, values, emailed, present, strict=True):
                if has and np.isnan(value):
                    note = "0 emailed" if n_mail == 0 else "no scores"
                    ax.text(xi, 0.02, note, rotation=90, ha="center", va="bottom", fontsize=7)
            _label_n(ax, xs, sub)
        chance = float(frame["chance"].iloc[0])
        ax.axhline(
            chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance:.2f})"
        )
        ax.set_xticks(x, conditions, rotation=20, ha="right")
        ax.set_ylim(0, 1)
        ax.set_ylabel("macro-F1 (95% CI)")
        ax.set_title(base_label(base))
    axes[0][0].legend(fontsize=8, loc="upper left")
    fig.suptitle("In-distribution chat vs out-of-distribution email")
    return _save(fig, path)


def ood_by_stage(summary: pd.DataFrame, path: Path) -> Path | None:
    """OOD macro-F1 by condition (training stage), one panel per base; None without OOD cells."""
    ood = summary[summary["task"] != ID_TASK]
    if ood.empty:
        return None
    bases = sorted(ood["base"].unique())
    fig, axes = plt.subplots(1, len(bases), figsize=(5 * len(bases), 4), squeeze=False)
    for ax, base in zip(axes[0], bases, strict=True):
        frame = ood[ood["base"] == base]
        conditions = sorted(frame["condition"].unique(), key=condition_sort_key)
        x = np.arange(len(conditions))
        for task in _task_order(list(frame["task"].unique())):
            sub = frame[frame["task"] == task].set_index("condition").reindex(conditions)
            ax.errorbar(
                x,
                sub["macro_f1"].to_numpy(float),
                yerr=_yerr(sub),
                marker="o",
                capsize=3,
                label=TASK_LABELS.get(task, task),
            )
        ax.axhline(float(frame["chance"].iloc[0]), color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(x, conditions, rotation=20, ha="right")
        ax.set_ylim(0, 1)
        ax.set_ylabel("OOD macro-F1 (95% CI)")
        ax.set_title(base_label(base))
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Out-of-distribution macro-F1 by stage")
    return _save(fig, path)


def persona_heatmap(per_persona: pd.DataFrame, path: Path) -> Path:
    """Heatmap of per-persona F1: one row per cell, one column per persona."""
    frame = per_persona.assign(
        cell=[
            f"{base_label(b)} / {c} / {t}"
            for b, c, t in zip(
                per_persona["base"], per_persona["condition"], per_persona["task"], strict=True
            )
        ]
    )
    personas = list(dict.fromkeys(frame["persona"]))
    cells = list(dict.fromkeys(frame["cell"]))
    grid = frame.pivot(index="cell", columns="persona", values="f1").reindex(
        index=cells, columns=personas
    )
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(personas), 1.2 + 0.45 * len(cells)))
    image = ax.imshow(grid.to_numpy(float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i in range(len(cells)):
        for j in range(len(personas)):
            v = grid.iat[i, j]
            if np.isfinite(v):
                ax.text(
                    j,
                    i,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if v < 0.5 else "black",
                )
    ax.set_xticks(range(len(personas)), personas, rotation=45, ha="right")
    ax.set_yticks(range(len(cells)), cells)
    fig.colorbar(image, ax=ax, label="F1")
    ax.set_title("Per-persona F1")
    return _save(fig, path)


def confusion_figure(matrix: pd.DataFrame, title: str, path: Path) -> Path:
    """One confusion matrix: counts in the cells, colour = share of the gold row."""
    counts = matrix.to_numpy(float)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    fig, ax = plt.subplots(figsize=(1.5 + 0.6 * matrix.shape[1], 1.2 + 0.5 * matrix.shape[0]))
    image = ax.imshow(shares, vmin=0, vmax=1, cmap="Blues", aspect="auto")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if counts[i, j]:
                ax.text(
                    j,
                    i,
                    f"{int(counts[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if shares[i, j] > 0.5 else "black",
                )
    ax.set_xticks(range(matrix.shape[1]), list(matrix.columns), rotation=45, ha="right")
    ax.set_yticks(range(matrix.shape[0]), list(matrix.index))
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    fig.colorbar(image, ax=ax, label="share of gold row")
    ax.set_title(title)
    return _save(fig, path)
