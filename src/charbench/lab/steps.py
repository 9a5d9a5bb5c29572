"""The lab's step functions (order, dependencies and resuming: :mod:`charbench.lab.pipeline`).

Each takes the :class:`~charbench.lab.pipeline.Lab` and the step's name and returns the
paths to record in ``lab.json`` and the step's details (counts and measurements). The
generation and evaluation steps are ``charbench sweep`` grids run with
:func:`charbench.sweep.run_base` (one ``eval_set`` per step, so an interrupted step keeps
its finished evals); the classifier step is ``charbench train-classifier``'s
:func:`charbench.training.train_into`; the report step is ``charbench report``'s
:func:`charbench.report.build_report`.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charbench.lab.data import collect_pairs, read_pairs, write_jsonl

if TYPE_CHECKING:
    from charbench.lab.settings import Lab
    from charbench.sweep import SweepConfig, SweepEval

LAB = "lab"
"""The sweep condition of the lab's adapters."""


class StepFailed(RuntimeError):
    """A step did not finish (the message says where its logs are; rerun to resume)."""


def _config(lab: Lab, log_dir: Path, tasks: list[str], prompts: str, n: int,
            classifier: str, stages: list[str], lab_adapters: bool) -> SweepConfig:
    from charbench.sweep import SweepConfig

    s = lab.settings
    return SweepConfig(
        bases=[lab.base_path], stages=stages, tasks=tasks, personas=lab.personas,
        adapters={LAB: lab.adapter_template()} if lab_adapters else {},
        persona_set=lab.persona_file, n=n, prompts=prompts, scenarios=list(s.scenarios),
        classifier=classifier, selection="heldout", log_dir=str(log_dir),
        # one eval at a time, as in the demo: padding short chat prompts to the agent
        # prompt's length in one batch costs more on a CPU than it saves
        # chat_persona samples at OCT's temperature 0.7 and top-p 0.95 by default
        generate={"seed": s.seed, "max_tasks": 1},
    )


def _run(lab: Lab, cfg: SweepConfig, grid: list[SweepEval], what: str) -> list[Path]:
    """Run ``grid`` (budgets applied); the ``.eval`` logs it left; StepFailed if one failed."""
    from charbench.sweep import run_base, with_budgets

    s = lab.settings
    grid = [with_budgets(ev, s.max_tokens, s.agent_max_tokens, s.max_turns, s.tool_choice)
            for ev in grid]
    if not run_base(grid, cfg, display=lab.display):
        raise StepFailed(f"{what}: an eval did not finish (logs under {cfg.log_dir}); run the "
                         "same command again to resume")
    return sorted(Path(cfg.log_dir).rglob("*.eval"))


def _with_prompted_base(grid: list[SweepEval]) -> list[SweepEval]:
    """Every ``base`` entry preceded by its ``prompted`` twin; other entries as they are."""
    from charbench.sweep import prompted

    out: list[SweepEval] = []
    for ev in grid:
        out.extend([prompted(ev), ev] if ev.condition == "base" else [ev])
    return out


def data_step(lab: Lab, name: str) -> tuple[list[Path], dict[str, Any]]:
    """Chosen (prompted) and rejected (base) chat replies, then the pairs as JSONL."""
    from charbench.sweep import build_grid

    s, out = lab.settings, lab.out / "data"
    cfg = _config(lab, out / "logs", ["chat"], s.distill_prompts, s.n_distill, "zeroshot",
                  ["base"], False)
    logs = _run(lab, cfg, _with_prompted_base(build_grid(cfg)), "distillation data")
    data = collect_pairs(out / "logs", lab.personas)
    files = write_jsonl(data, out)
    details = {"pairs": data.counts(), "left_out": data.skipped,
               "prompt_ids": lab.prompt_ids.get("--distill-prompts", [])}
    return [*files, *logs], details


def adapter_step(lab: Lab, name: str) -> tuple[list[Path], dict[str, Any]]:
    """Train one persona's adapter on its pairs (reuses one finished before a crash)."""
    import json

    from charbench.lab.train import train_adapter

    persona = name.split(":", 1)[1]
    out = lab.out / "adapters" / persona
    if not (out / "training.json").is_file():
        pairs = read_pairs(lab.out / "data" / f"{persona}.dpo.jsonl")
        train_adapter(lab.base_path, pairs, out, lab.settings.adapter_settings,
                      lab.settings.device)
    record = json.loads((out / "training.json").read_text(encoding="utf-8"))
    details = {k: record[k] for k in ("pairs", "steps", "train_loss")}
    return [out], details


def classifier_data_step(lab: Lab, name: str) -> tuple[list[Path], dict[str, Any]]:
    """Chat replies of the trained adapters (no persona prompt) on the classifier prompts."""
    from charbench.sweep import build_grid

    s = lab.settings
    cfg = _config(lab, lab.out / "classifier-data", ["chat"], s.classifier_prompts,
                  s.n_classifier, "zeroshot", [], True)
    logs = _run(lab, cfg, build_grid(cfg), "classifier data")
    return logs, {"prompt_ids": lab.prompt_ids.get("--classifier-prompts", [])}


def classifier_command(lab: Lab, base: str) -> str:
    """The ``charbench train-classifier`` command equivalent to the classifier step."""
    s = lab.settings
    args = ["charbench", "train-classifier", str(lab.out / "classifier-data"), "--out",
            str(lab.out / "classifier"), "--base", base, "--epochs", str(s.classifier_epochs),
            "--lr", str(s.classifier_lr), "--max-length", "128", "--seed", str(s.seed),
            "--val-fraction", "0.25", "--min-per-persona", "10", "--personas",
            ",".join(s.personas)]
    return shlex.join(args)


def classifier_step(lab: Lab, name: str) -> tuple[list[Path], dict[str, Any]]:
    """Fine-tune the persona classifier on the adapters' replies (train-classifier)."""
    from charbench.training import TrainSettings, train_into

    s, out = lab.settings, lab.out / "classifier"
    base = s.classifier_base
    if base.strip().lower() == "minilm":
        from charbench.assets import minilm_path

        base = str(minilm_path())
    settings = TrainSettings(base=base, epochs=s.classifier_epochs, lr=s.classifier_lr,
                             max_length=128, seed=s.seed, val_fraction=0.25,
                             min_per_persona=10, device=s.device)
    result = train_into([lab.out / "classifier-data"], out, settings, lab.personas)
    details: dict[str, Any] = {"command": classifier_command(lab, s.classifier_base)}
    if result is not None:
        details.update(macro_f1=result.macro_f1, ci=[result.ci_low, result.ci_high],
                       counts=result.counts, chance=1 / len(result.labels))
        print(f"[lab] classifier validation macro-F1 {result.macro_f1:.2f} [95% CI "
              f"{result.ci_low:.2f}, {result.ci_high:.2f}] on held-out prompts (chance "
              f"{1 / len(result.labels):.2f})", flush=True)
    return [out], details


def evals_step(lab: Lab, name: str) -> tuple[list[Path], dict[str, Any]]:
    """The evaluation grid: base, prompted and lab x the lab's tasks."""
    from charbench.sweep import build_grid

    s = lab.settings
    cfg = _config(lab, lab.out / "evals", list(s.tasks), s.eval_prompts, s.n_eval,
                  str(lab.out / "classifier"), ["base"], True)
    grid = _with_prompted_base(build_grid(cfg))
    logs = _run(lab, cfg, grid, "evaluation")
    return logs, {"evals": [f"{ev.task}/{ev.condition}" for ev in grid],
                  "prompt_ids": lab.prompt_ids.get("--eval-prompts", [])}


def report_step(lab: Lab, name: str) -> tuple[list[Path], dict[str, Any]]:
    """``charbench report`` on the evaluation logs, into ``OUT/report``."""
    from charbench.report import build_report

    out = lab.out / "report"
    report = build_report(lab.out / "evals", out=out)
    cells = [
        {k: (None if v != v else v) for k, v in row.items()}  # NaN -> None for JSON
        for row in report.summary[["condition", "task", "n", "macro_f1", "macro_f1_ci_low",
                                   "macro_f1_ci_high"]].to_dict("records")
    ]
    return [out], {"figures": [str(f) for f in report.figures], "summary": cells}
