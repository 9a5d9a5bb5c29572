"""``build_report``: logs in, tables, files and figures out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from charbench.contracts import UNPARSED_CALL
from charbench.report import figures
from charbench.report.load import LoadedLogs, load_log_dir
from charbench.report.published import PUBLISHED_SOURCES, published_match
from charbench.report.tables import ONE_UNIT, Tables, compute_tables


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
        notes: what the reader must know (skipped logs, retries, replicates, errors, ...).
        skipped: unreadable files skipped, each ``path: reason``.
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
    skipped: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


def _add_published(summary: pd.DataFrame) -> pd.DataFrame:
    """Published columns; filled only for cells built like the published ones (else a note).

    ``delta_published`` is ours minus published in the published convention: for email
    tasks the study's survivor macro-F1 (``macro_f1_study``: personas without an email left
    out), for chat ``macro_f1``.
    """
    cols = ("published_macro_f1", "published_n", "published_ci_low", "published_ci_high")
    values: dict[str, list[Any]] = {k: [] for k in (*cols, "published_note", "ours_published")}
    for _, row in summary.iterrows():
        pub, reason = published_match(row.to_dict())
        for k in cols:
            v = getattr(pub, k.removeprefix("published_"), None) if pub else None
            values[k].append(np.nan if v is None else float(v))
        values["published_note"].append(reason)
        study = row["eval_task"] != "chat" and np.isfinite(row.get("macro_f1_study", np.nan))
        values["ours_published"].append(row["macro_f1_study"] if study else row["macro_f1"])
    out = summary.assign(**values)
    return out.assign(delta_published=out["ours_published"] - out["published_macro_f1"])


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


def _row_cells(r: pd.Series, has_pub: bool) -> list[str]:
    emailed = (
        "" if not np.isfinite(r["n_emailed"]) else f"{int(r['n_emailed'])}/{int(r['n_total'])}"
    )
    row = [
        figures.base_label(str(r["base"])),
        str(r["condition"]),
        str(r["task"]),
        str(r["n"]),
        str(r["n_errors"]),
        f"{r['n_logs']}/{r['n_replicates']}",
        _fmt(r["macro_f1"]),
        _ci(r, "macro_f1"),
        str(r["ci_unit"]),
        _fmt(r["accuracy"]),
        emailed,
        _fmt(r["email_rate"]),
        _fmt(r["malformed_rate"]),
        _fmt(r["unparsed_call_rate"]),
        _fmt(r["macro_f1_itt"]),
        _ci(r, "macro_f1_itt"),
        str(r["flags"] or ""),
    ]
    if has_pub:
        row += [
            _fmt(r["macro_f1_study"]),
            _fmt(r["published_macro_f1"], 2),
            _fmt(r["delta_published"]),
        ]
    return row


def summary_rows(summary: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the human-readable cell table (terminal and markdown)."""
    has_pub = "published_macro_f1" in summary.columns
    header = [
        "base", "condition", "task", "n", "errors", "logs/replicates", "macro-F1", "95% CI",
        "CI unit", "accuracy", "emailed", "email rate", "malformed", "unparsed call",
        "macro-F1 ITT", "ITT 95% CI", "flags",
    ]
    if has_pub:
        header += ["macro-F1 (study conv.)", "published", "delta"]
    return header, [_row_cells(r, has_pub) for _, r in summary.iterrows()]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _gap_section(gaps: pd.DataFrame) -> list[str]:
    if gaps.empty:
        return []
    rows = [
        [
            figures.base_label(str(g["base"])), str(g["condition"]), str(g["ood_task"]),
            _fmt(g["id_macro_f1"]), _fmt(g["ood_macro_f1"]), _fmt(g["gap"]), _ci(g, "gap"),
            _fmt(g["gap_itt"]), _ci(g, "gap_itt"),
        ]
        for _, g in gaps.iterrows()
    ]
    header = ["base", "condition", "OOD task", "ID", "OOD", "gap", "95% CI", "gap ITT",
              "ITT 95% CI"]
    return ["", "## ID minus OOD gap", "", "ID and OOD units resampled independently.", "",
            _md_table(header, rows)]


def _persona_section(pp: pd.DataFrame) -> list[str]:
    if pp.empty:
        return []
    email = "email_rate" in pp.columns
    header = ["base", "condition", "task", "persona", "n", "F1", "pred rate"]
    header += ["email rate", "malformed", "unparsed call"] if email else []
    header += ["lift", "lift 95% CI"]
    rows = []
    for _, r in pp.iterrows():
        row = [figures.base_label(str(r["base"])), str(r["condition"]), str(r["task"]),
               str(r["persona"]), str(r["n"]), _fmt(r["f1"]), _fmt(r["pred_rate"])]
        if email:
            row += [_fmt(r.get("email_rate")), _fmt(r.get("malformed_rate")),
                    _fmt(r.get("unparsed_call_rate"))]
        rows.append([*row, _fmt(r["lift"]), _ci(r, "lift")])
    return ["", "## Per persona", "",
            "Lift: rate of predicting the persona on its own samples under the condition "
            "minus the rate under the base condition on the same prompts/scenarios "
            "(paired bootstrap).", "", _md_table(header, rows)]


def _published_section(summary: pd.DataFrame) -> list[str]:
    if "published_note" not in summary.columns:
        return []
    lines = [
        f"- {figures.base_label(str(r['base']))}/{r['condition']}/{r['task']}: "
        f"no published value ({r['published_note']})"
        for _, r in summary.iterrows()
        if r["published_note"]
    ]
    intro = (
        "Published values (DCT, REFERENCE section 7) are shown only for cells built like the "
        "published ones. For email tasks the delta uses the study's convention (macro-F1 "
        "over the personas that sent at least one email; column 'macro-F1 (study conv.)'); "
        "charbench's macro-F1 scores a persona with no email 0."
    )
    return ["", "## Published comparison", "", intro, "", *lines]


def render_markdown(report: Report, *, seed: int, n_boot: int) -> str:
    """The ``summary.md`` text."""
    parts = [
        "# charbench report",
        "",
        f"Logs: {len(report.logs)}; samples: {len(report.samples)}; cells: {len(report.summary)}. "
        "Every statistic is recomputed from per-sample predictions by the functions the "
        f"in-log metrics use. 95% CIs: percentile bootstrap, {n_boot} resamples, seed {seed}, "
        "over the unit in each cell's 'CI unit' column (row: each sample; cluster: each "
        "prompt or scenario; family: each scenario family). Email-task macro-F1 is over the "
        "samples that sent an email; macro-F1 ITT (intent to treat) counts a missing email "
        "as a miss. 'logs/replicates': log files and independent runs pooled in the cell.",
        "",
        "## Cells",
        "",
        _md_table(*summary_rows(report.summary)),
    ]
    parts += _published_section(report.summary)
    parts += _gap_section(report.gaps)
    parts += _persona_section(report.per_persona)
    if report.notes:
        parts += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    if report.figures:
        parts += ["", "## Figures", ""] + [
            f"![{p.stem}]({p.relative_to(report.out).as_posix()})" for p in report.figures
        ]
    return "\n".join(parts) + "\n"


def _check_args(log_dir: str | Path, out: str | Path | None, compare: str | None,
                n_boot: int) -> Path:
    if compare is not None and compare not in PUBLISHED_SOURCES:
        raise ValueError(f"unknown --compare {compare!r}; valid: {', '.join(PUBLISHED_SOURCES)}")
    if n_boot < 1:
        raise ValueError(f"--n-boot must be at least 1, got {n_boot}")
    out_dir = Path(out) if out is not None else Path(log_dir) / "report"
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(
            f"--out {str(out_dir)!r} is an existing file; give a directory for the report "
            "(it is created if missing)"
        )
    return out_dir


def _cell_notes(summary: pd.DataFrame, skipped: int) -> list[str]:
    notes: list[str] = []
    if skipped:
        notes.append(f"{skipped} unreadable file(s) skipped (named above; --strict fails instead)")
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
    single = summary[summary["flags"].str.contains(ONE_UNIT, na=False)]
    if not single.empty:
        notes.append(
            "the 95% CI of these cells is a point, not a measurement of uncertainty: their "
            "scored samples hold a single bootstrap unit (flag 'ci_one_unit'; one scenario "
            "family, prompt or sample), and so do their ID-minus-OOD gap CIs on the OOD side; "
            "add scenarios: " + ", ".join(
                f"{figures.base_label(str(r['base']))}/{r['condition']}/{r['task']} (n={r['n']})"
                for _, r in single.iterrows()))
    for _, r in summary[summary["flags"].str.contains(UNPARSED_CALL, na=False)].iterrows():
        notes.append(
            f"{figures.base_label(str(r['base']))}/{r['condition']}/{r['task']}: "
            f"{r['unparsed_call_rate']:.1%} of rollouts ended 'unparsed_call' (the model wrote "
            "a tool call the provider did not parse; they count as no email). Fix: rerun with "
            "-T text_tool_calls=true, or serve the model with its tool-call parser "
            "(docs/serving.md)."
        )
    return notes


def build_report(
    log_dir: str | Path,
    out: str | Path | None = None,
    compare: str | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    *,
    write: bool = True,
    strict: bool = False,
    pool_replicates: bool = False,
) -> Report:
    """Read every charbench log under ``log_dir`` and build the report.

    Args:
        log_dir: directory searched recursively for Inspect logs (symbolic links followed).
        out: output directory; default ``LOG_DIR/report``; must not be an existing file.
        compare: ``"published"`` adds REFERENCE section 7's numbers for the cells built
            like the published ones (see :func:`charbench.report.published.published_match`);
            the others get a note saying why. Default None.
        seed: bootstrap seed (default 0): the same logs give the same CIs.
        n_boot: bootstrap resamples (default 1000).
        write: write the tables and figures to ``out`` (default True).
        strict: fail on an unreadable log file instead of skipping it with a note.
        pool_replicates: pool replicate runs of a cell whose measurement settings differ
            (default False: refuse, naming both logs).

    Returns:
        The :class:`Report`.

    Raises:
        FileNotFoundError: no logs under ``log_dir``.
        ValueError: bad ``compare``/``n_boot``/``out``, no charbench logs, an unreadable
            file with ``strict`` (:class:`~charbench.report.load.LogReadError`), or logs
            that cannot be pooled (:class:`~charbench.report.load.PoolingError`).
    """
    out_dir = _check_args(log_dir, out, compare, n_boot)
    loaded: LoadedLogs = load_log_dir(log_dir, strict=strict, pool_replicates=pool_replicates)
    if loaded.samples.empty:
        raise ValueError(
            f"no charbench samples under {str(log_dir)!r}: "
            + ("; ".join(loaded.notes) or "the logs hold no samples")
        )
    tables: Tables = compute_tables(loaded.samples, seed=seed, n_boot=n_boot)
    summary = _add_published(tables.summary) if compare == "published" else tables.summary
    report = Report(
        summary=summary,
        per_persona=tables.per_persona,
        gaps=tables.gaps,
        confusion=tables.confusion,
        samples=loaded.samples,
        logs=loaded.logs,
        notes=[*loaded.notes, *_cell_notes(summary, len(loaded.skipped))],
        out=out_dir,
        skipped=list(loaded.skipped),
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
    report.samples.drop(columns=["personas", "labels", "fields"]).to_csv(files[4], index=False)
    md = out / "summary.md"
    md.write_text(render_markdown(report, seed=seed, n_boot=n_boot))
    report.files = [md, *files]
