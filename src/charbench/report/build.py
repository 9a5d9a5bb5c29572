"""``build_report``: logs in, tables, files and figures out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from charbench.report import figures
from charbench.report.load import LoadedLogs, load_log_dir
from charbench.report.published import PUBLISHED_SOURCES, published_for
from charbench.report.tables import Tables, compute_tables


@dataclass
class Report:
    """Everything ``charbench report`` produced.

    Attributes:
        summary: one row per cell (base, condition, task); see
            :func:`charbench.report.tables.compute_tables` for the columns. With
            ``compare="published"`` it also has ``published_macro_f1``, ``published_n``,
            ``published_ci_low``, ``published_ci_high`` and ``delta_published``
            (ours minus published; NaN where nothing published is comparable).
        per_persona: one row per (cell, persona), with lift over base where available.
        gaps: ID-minus-OOD gaps per (base, condition, OOD task) with CIs.
        confusion: confusion matrix per cell key ``(base, condition, task)``.
        samples: the pooled per-sample table every number was computed from.
        logs: the logs read (path, cell, status, samples, errors).
        notes: what the reader must know (skipped logs, duplicates, errors, ...).
        out: the output directory.
        files: written tables (``summary.md``, ``summary.csv``, ``per_persona.csv``,
            ``gaps.csv``, ``confusion.csv``, ``samples.csv``).
        figures: written PNG figures.
    """

    summary: pd.DataFrame
    per_persona: pd.DataFrame
    gaps: pd.DataFrame
    confusion: dict[tuple[str, str, str], pd.DataFrame]
    samples: pd.DataFrame
    logs: pd.DataFrame
    notes: list[str]
    out: Path
    files: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


def _add_published(summary: pd.DataFrame) -> pd.DataFrame:
    values: dict[str, list[float]] = {
        k: []
        for k in ("published_macro_f1", "published_n", "published_ci_low", "published_ci_high")
    }
    for _, row in summary.iterrows():
        pub = published_for(
            str(row["base"]),
            str(row["condition"]),
            str(row["task"]),
            str(row["personas"]).split(","),
            None if row["task"] != "chat" else row["suffix"],
        )
        values["published_macro_f1"].append(pub.macro_f1 if pub else np.nan)
        values["published_n"].append(float(pub.n) if pub and pub.n is not None else np.nan)
        values["published_ci_low"].append(pub.ci_low if pub and pub.ci_low is not None else np.nan)
        values["published_ci_high"].append(
            pub.ci_high if pub and pub.ci_high is not None else np.nan
        )
    out = summary.assign(**values)
    return out.assign(delta_published=out["macro_f1"] - out["published_macro_f1"])


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            return ""
        return f"{value:.{digits}f}"
    return str(value)


def _ci(row: pd.Series, prefix: str) -> str:
    lo, hi = row.get(f"{prefix}_ci_low"), row.get(f"{prefix}_ci_high")
    if lo is None or hi is None or not np.isfinite(lo) or not np.isfinite(hi):
        return ""
    return f"[{lo:.3f}, {hi:.3f}]"


def summary_rows(summary: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the human-readable cell table (terminal and markdown)."""
    has_pub = "published_macro_f1" in summary.columns
    header = [
        "base",
        "condition",
        "task",
        "n",
        "errors",
        "macro-F1",
        "95% CI",
        "accuracy",
        "emailed",
        "email rate",
        "malformed",
        "macro-F1 ITT",
        "ITT 95% CI",
    ]
    if has_pub:
        header += ["published", "delta"]
    rows = []
    for _, r in summary.iterrows():
        emailed = (
            "" if not np.isfinite(r["n_emailed"]) else f"{int(r['n_emailed'])}/{int(r['n_total'])}"
        )
        row = [
            figures.base_label(str(r["base"])),
            str(r["condition"]),
            str(r["task"]),
            str(r["n"]),
            str(r["n_errors"]),
            _fmt(r["macro_f1"]),
            _ci(r, "macro_f1"),
            _fmt(r["accuracy"]),
            emailed,
            _fmt(r["email_rate"]),
            _fmt(r["malformed_rate"]),
            _fmt(r["macro_f1_itt"]),
            _ci(r, "macro_f1_itt"),
        ]
        if has_pub:
            row += [_fmt(r["published_macro_f1"], 2), _fmt(r["delta_published"])]
        rows.append(row)
    return header, rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: Report, *, seed: int, n_boot: int) -> str:
    """The ``summary.md`` text."""
    parts = [
        "# charbench report",
        "",
        f"Logs: {len(report.logs)}; samples: {len(report.samples)}; cells: {len(report.summary)}. "
        f"Every statistic is recomputed from per-sample predictions. 95% CIs: percentile "
        f"bootstrap over clusters (prompts or scenarios), {n_boot} resamples, seed {seed}. "
        "Agentic-task macro-F1 is over the samples that sent an email; macro-F1 ITT "
        "(intent to treat) counts a missing email as a miss.",
        "",
        "## Cells",
        "",
        _md_table(*summary_rows(report.summary)),
    ]
    if not report.gaps.empty:
        parts += ["", "## ID minus OOD gap", "", "ID and OOD clusters resampled independently.", ""]
        gap_rows = [
            [
                figures.base_label(str(g["base"])),
                str(g["condition"]),
                str(g["ood_task"]),
                _fmt(g["id_macro_f1"]),
                _fmt(g["ood_macro_f1"]),
                _fmt(g["gap"]),
                _ci(g, "gap"),
                _fmt(g["gap_itt"]),
                _ci(g, "gap_itt"),
            ]
            for _, g in report.gaps.iterrows()
        ]
        parts.append(
            _md_table(
                [
                    "base",
                    "condition",
                    "OOD task",
                    "ID",
                    "OOD",
                    "gap",
                    "95% CI",
                    "gap ITT",
                    "ITT 95% CI",
                ],
                gap_rows,
            )
        )
    pp = report.per_persona
    if not pp.empty:
        parts += [
            "",
            "## Per persona",
            "",
            "Lift: rate of predicting the persona on its own samples under the condition "
            "minus the rate under the base condition on the same prompts/scenarios "
            "(paired cluster bootstrap).",
            "",
        ]
        has_lift = "lift" in pp.columns
        header = ["base", "condition", "task", "persona", "n", "F1", "pred rate"]
        header += ["email rate", "malformed"] if "email_rate" in pp.columns else []
        header += ["lift", "lift 95% CI"] if has_lift else []
        rows = []
        for _, r in pp.iterrows():
            row = [
                figures.base_label(str(r["base"])),
                str(r["condition"]),
                str(r["task"]),
                str(r["persona"]),
                str(r["n"]),
                _fmt(r["f1"]),
                _fmt(r["pred_rate"]),
            ]
            if "email_rate" in pp.columns:
                row += [_fmt(r["email_rate"]), _fmt(r["malformed_rate"])]
            if has_lift:
                row += [_fmt(r["lift"]), _ci(r, "lift")]
            rows.append(row)
        parts.append(_md_table(header, rows))
    if report.notes:
        parts += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    if report.figures:
        parts += ["", "## Figures", ""] + [
            f"![{p.stem}]({p.relative_to(report.out).as_posix()})" for p in report.figures
        ]
    return "\n".join(parts) + "\n"


def build_report(
    log_dir: str | Path,
    out: str | Path | None = None,
    compare: str | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    *,
    write: bool = True,
) -> Report:
    """Read every charbench log under ``log_dir`` and build the report.

    Args:
        log_dir: directory searched recursively for Inspect logs.
        out: output directory; default ``LOG_DIR/report``.
        compare: ``"published"`` adds REFERENCE section 7's numbers side by side
            (only for comparable cells; see :func:`charbench.report.published.published_for`).
            Default None.
        seed: bootstrap seed (default 0): the same logs give the same CIs.
        n_boot: bootstrap resamples (default 1000).
        write: write the tables and figures to ``out`` (default True).

    Returns:
        The :class:`Report`.

    Raises:
        FileNotFoundError: no logs under ``log_dir``.
        ValueError: ``compare`` unknown, ``n_boot`` < 1, no charbench logs, or logs that
            cannot be pooled (:class:`charbench.report.load.PoolingError`, naming the logs).
    """
    if compare is not None and compare not in PUBLISHED_SOURCES:
        raise ValueError(f"unknown --compare {compare!r}; valid: {', '.join(PUBLISHED_SOURCES)}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    out_dir = Path(out) if out is not None else Path(log_dir) / "report"
    loaded: LoadedLogs = load_log_dir(log_dir)
    if loaded.samples.empty:
        raise ValueError(
            f"no charbench samples under {str(log_dir)!r}: "
            + ("; ".join(loaded.notes) or "the logs hold no samples")
        )
    tables: Tables = compute_tables(loaded.samples, seed=seed, n_boot=n_boot)
    summary = _add_published(tables.summary) if compare == "published" else tables.summary
    notes = list(loaded.notes)
    errors = int(summary["n_errors"].sum())
    if errors:
        cells = summary[summary["n_errors"] > 0]
        notes.append(
            f"{errors} sample(s) errored and are excluded from every statistic (counted in "
            "the 'errors' column): "
            + ", ".join(
                f"{figures.base_label(str(r['base']))}/{r['condition']}/{r['task']}: {r['n_errors']}"
                for _, r in cells.iterrows()
            )
        )
    report = Report(
        summary=summary,
        per_persona=tables.per_persona,
        gaps=tables.gaps,
        confusion=tables.confusion,
        samples=loaded.samples,
        logs=loaded.logs,
        notes=notes,
        out=out_dir,
    )
    if write:
        _write(report, seed=seed, n_boot=n_boot)
    return report


def _write(report: Report, *, seed: int, n_boot: int) -> None:
    out = report.out
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    figs: list[Path] = [figures.id_vs_ood(report.summary, fig_dir / "id_vs_ood.png")]
    stage = figures.ood_by_stage(report.summary, fig_dir / "ood_by_stage.png")
    if stage is not None:
        figs.append(stage)
    if not report.per_persona.empty:
        figs.append(figures.persona_heatmap(report.per_persona, fig_dir / "per_persona_f1.png"))
    for (base, condition, task), matrix in report.confusion.items():
        title = f"{figures.base_label(base)} / {condition} / {task}"
        name = figures.slug(f"confusion_{figures.base_label(base)}_{condition}_{task}") + ".png"
        figs.append(figures.confusion_figure(matrix, title, fig_dir / name))
    report.figures = figs

    files = [
        out / "summary.csv",
        out / "per_persona.csv",
        out / "gaps.csv",
        out / "confusion.csv",
        out / "samples.csv",
    ]
    report.summary.to_csv(files[0], index=False)
    report.per_persona.to_csv(files[1], index=False)
    report.gaps.to_csv(files[2], index=False)
    long = [
        m.stack().rename("count").reset_index().assign(base=k[0], condition=k[1], task=k[2])
        for k, m in report.confusion.items()
    ]
    conf = (
        pd.concat(long, ignore_index=True)
        if long
        else pd.DataFrame(columns=["gold", "pred", "count", "base", "condition", "task"])
    )
    conf[["base", "condition", "task", "gold", "pred", "count"]].to_csv(files[3], index=False)
    report.samples.drop(columns=["personas", "labels"]).to_csv(files[4], index=False)
    md = out / "summary.md"
    md.write_text(render_markdown(report, seed=seed, n_boot=n_boot))
    report.files = [md, *files]
