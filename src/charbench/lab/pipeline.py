"""The lab's steps, their order and dependencies, and the resumable runner.

Steps (each one's outputs under the lab directory ``OUT``):

=====================  ============================================  =======================
step                   what it does                                  outputs
=====================  ============================================  =======================
``data``               chat_persona through hf-lora on the           ``data/logs``,
                       distillation prompts, ``prompted`` (chosen)   ``data/{p}.dpo.jsonl``,
                       and ``base`` (rejected); pairs as JSONL       ``data/{p}.sft.jsonl``
``adapter:{p}``        one LoRA per persona with TRL                 ``adapters/{p}``
``classifier-data``    chat replies of the trained adapters, no      ``classifier-data``
                       persona prompt, on the classifier prompts
``classifier``         ``charbench train-classifier`` on them        ``classifier``
``evals``              ``charbench sweep``: base, prompted, lab x    ``evals``
                       the tasks, scored by that classifier
``report``             ``charbench report`` on the evals             ``report``
=====================  ============================================  =======================

Resuming (:func:`run_steps`): a step recorded in ``lab.json`` with unchanged artifacts is
skipped. A step runs when it is not, and then every step that depends on it runs too; the
outputs of such a dependent step, which were made from the old inputs, are moved to
``OUT/superseded/<time>/`` first so that nothing stale (an eval log of an old adapter) is
reused. With ``Lab.isolate`` (the default on CUDA) each step runs in its own process, so a
step never shares the GPU with the models of the step before it. A step that was interrupted, with its inputs unchanged, resumes in place: Inspect's
``eval_set`` keeps finished evals, and adapters and the classifier are trained into a
``.partial`` directory renamed into place when done.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from charbench.lab.settings import Lab

StepFn = Callable[[Lab, str], tuple[list[Path], dict[str, Any]]]


@dataclass(frozen=True)
class Step:
    """One step: its name, what it needs first, its output paths and its function."""

    name: str
    needs: tuple[str, ...]
    outputs: tuple[str, ...]
    run: StepFn


def plan_steps(personas: list[str]) -> list[Step]:
    """The lab's steps in order (see the module docstring)."""
    from charbench.lab import steps as s

    adapters = tuple(f"adapter:{p}" for p in personas)
    return [
        Step("data", (), ("data",), s.data_step),
        *(Step(f"adapter:{p}", ("data",), (f"adapters/{p}",), s.adapter_step)
          for p in personas),
        Step("classifier-data", adapters, ("classifier-data",), s.classifier_data_step),
        Step("classifier", ("classifier-data",), ("classifier",), s.classifier_step),
        Step("evals", (*adapters, "classifier"), ("evals",), s.evals_step),
        Step("report", ("evals",), ("report",), s.report_step),
    ]


def _supersede(lab: Lab, step: Step, stamp: str) -> None:
    """Move a step's existing outputs to ``OUT/superseded/<stamp>/``."""
    for rel in step.outputs:
        src = lab.out / rel
        for path in (src, src.with_name(src.name + ".partial")):
            if path.exists():
                dest = lab.out / "superseded" / stamp / path.relative_to(lab.out)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(path), str(dest))
                print(f"[lab] {step.name}: its inputs changed; moved the old {path.name} to "
                      f"{dest}", flush=True)


def _child(lab: Lab, name: str, result: str) -> None:
    """A step in its own process: run it and write its paths and details to ``result``."""
    step = next(s for s in plan_steps(lab.personas) if s.name == name)
    paths, details = step.run(lab, name)
    Path(result).write_text(json.dumps({"paths": [str(p) for p in paths],
                                        "details": details}, default=str), encoding="utf-8")


def run_in_process(lab: Lab, step: Step) -> tuple[list[Path], dict[str, Any]]:
    """Run ``step`` in a fresh (spawned) process, so the memory of the models it loaded (an
    hf-lora base, a model being trained) is returned when it ends, before the next step.

    Raises:
        StepFailed: the process failed (its traceback is on stderr above).
        KeyboardInterrupt: re-raised after stopping the child.
    """
    from charbench.lab.steps import StepFailed

    result = lab.out / f".step-{step.name.replace(':', '-')}.json"
    result.unlink(missing_ok=True)
    proc = multiprocessing.get_context("spawn").Process(
        target=_child, args=(lab, step.name, str(result)), name=f"charbench-lab-{step.name}")
    proc.start()
    try:
        proc.join()
    except BaseException:
        proc.terminate()
        proc.join()
        raise
    if proc.exitcode != 0 or not result.is_file():
        raise StepFailed(f"step {step.name} failed in its process (exit {proc.exitcode}); see "
                         "the error above")
    data = json.loads(result.read_text(encoding="utf-8"))
    result.unlink()
    return [Path(p) for p in data["paths"]], data["details"]


def run_steps(lab: Lab, steps: list[Step], say: Callable[[str], None] = print) -> list[str]:
    """Run the steps that are not finished, in order; the names of the steps run.

    Raises whatever a step raises; the steps finished before it stay recorded.
    """
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    ran: list[str] = []
    for i, step in enumerate(steps, 1):
        stale = any(n in ran for n in step.needs)
        if not stale and lab.manifest.is_done(step.name, lab.out):
            say(f"[lab {i}/{len(steps)}] {step.name}: done earlier, kept")
            continue
        if stale or step.name in lab.manifest.steps:
            lab.manifest.forget([step.name], lab.out)
            _supersede(lab, step, stamp)
        say(f"[lab {i}/{len(steps)}] {step.name} ...")
        started = time.monotonic()
        paths, details = (run_in_process(lab, step) if lab.isolate
                          else step.run(lab, step.name))
        seconds = time.monotonic() - started
        lab.manifest.record(lab.out, step.name, lab.command, paths, details, seconds)
        say(f"[lab {i}/{len(steps)}] {step.name}: done in {seconds / 60:.1f} min")
        ran.append(step.name)
    return ran
