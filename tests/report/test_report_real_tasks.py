"""charbench report on logs of the REAL tasks (chat_persona, agentic_email draft scaffold)
run on mockllm with the tiny ModernBERT classifier: every summary number equals sklearn on
the logged predictions."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from inspect_ai import eval
from inspect_ai.log import list_eval_logs, read_eval_log
from inspect_ai.model import ChatMessage, GenerateConfig, ModelOutput, ModelUsage, get_model
from inspect_ai.tool import ToolChoice, ToolInfo
from sklearn.metrics import accuracy_score, f1_score

from charbench.personas import PERSONA_DESCRIPTIONS
from charbench.report import build_report

pytestmark = pytest.mark.slow
PERSONAS = ["sarcasm", "loving", "mathematical"]


class Texts:
    """mockllm outputs: persona-description words in random order, sometimes empty."""

    def __init__(self, seed: int, empty_rate: float) -> None:
        self.rnd = random.Random(seed)
        self.empty_rate = empty_rate
        self.words = " ".join(PERSONA_DESCRIPTIONS.values()).split()
        self.lock = threading.Lock()

    def __call__(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        with self.lock:
            empty = self.rnd.random() < self.empty_rate
            text = "" if empty else " ".join(self.rnd.choices(self.words, k=25))
        out = ModelOutput.from_content(model="mockllm", content=text)
        out.usage = ModelUsage(input_tokens=10, output_tokens=25, total_tokens=35)
        return out


@pytest.fixture(scope="module")
def real_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fixtures.tiny_classifier import build_tiny_classifier

    from charbench.agentic_email import agentic_email
    from charbench.chat_persona import chat_persona

    d = tmp_path_factory.mktemp("real")
    clf = str(build_tiny_classifier(d / "clf"))
    logs = d / "logs"
    for i, condition in enumerate(("base", "full")):
        model = get_model("mockllm/{persona}", custom_outputs=Texts(i, 0.0), memoize=False)
        eval(
            chat_persona(
                personas=PERSONAS, prompts="builtin", n=6, classifier=clf, condition=condition
            ),
            model=model,
            log_dir=str(logs),
            display="none",
            max_tokens=32,
        )
        model = get_model("mockllm/{persona}", custom_outputs=Texts(10 + i, 0.3), memoize=False)
        eval(
            agentic_email(
                personas=PERSONAS,
                scaffold="draft",
                classifier=clf,
                scenarios="budget_overreach,recognition",
                condition=condition,
            ),
            model=model,
            log_dir=str(logs),
            display="none",
            max_tokens=32,
        )
    return logs


def _rows(log_dir: Path) -> pd.DataFrame:
    rows = []
    for info in list_eval_logs(str(log_dir)):
        log = read_eval_log(info)
        assert log.status == "success", log.error
        meta = log.eval.metadata["charbench"]
        for s in log.samples or []:
            [score] = [v for v in (s.scores or {}).values() if "gold" in (v.metadata or {})]
            rows.append(
                {
                    "condition": meta["condition"],
                    "task": meta["task"],
                    "gold": score.metadata["gold"],
                    "pred": score.metadata["pred"],
                    "outcome": score.metadata["outcome"],
                }
            )
    return pd.DataFrame(rows)


def test_real_task_logs_through_report(real_logs: Path) -> None:
    report = build_report(real_logs)  # the metrics' own seed and n_boot
    logged = _rows(real_logs)
    summary = pd.read_csv(real_logs / "report" / "summary.csv")
    assert sorted(zip(summary["condition"], summary["task"], strict=True)) == [
        ("base", "chat"),
        ("base", "draft"),
        ("full", "chat"),
        ("full", "draft"),
    ]
    for _, row in summary.iterrows():
        cell = logged[(logged["condition"] == row["condition"]) & (logged["task"] == row["task"])]
        scored = cell[cell["outcome"] == "emailed"] if row["task"] == "draft" else cell
        preds = scored["pred"].fillna("<none>")
        assert row["n"] == len(scored)
        assert row["macro_f1"] == pytest.approx(
            f1_score(scored["gold"], preds, labels=PERSONAS, average="macro", zero_division=0)
        )
        assert row["accuracy"] == pytest.approx(accuracy_score(scored["gold"], preds))
        if row["task"] == "draft":
            itt = [
                p if o == "emailed" and p else "<none>"
                for p, o in zip(cell["pred"], cell["outcome"], strict=True)
            ]
            assert row["macro_f1_itt"] == pytest.approx(
                f1_score(cell["gold"], itt, labels=PERSONAS, average="macro", zero_division=0)
            )
            assert row["email_rate"] == pytest.approx((cell["outcome"] == "emailed").mean())
            assert 0 < row["email_rate"] < 1
    # the log's own metrics and the report agree exactly, CIs included (same code, same rows)
    for info in list_eval_logs(str(real_logs)):
        log = read_eval_log(info, header_only=True)
        meta = log.eval.metadata["charbench"]
        metrics = {k: m.value for s in log.results.scores for k, m in s.metrics.items()}
        row = report.summary[
            (report.summary["condition"] == meta["condition"])
            & (report.summary["task"] == meta["task"])
        ].iloc[0]
        shared = [k for k in metrics if k in row.index]
        assert {"macro_f1", "macro_f1_ci_low", "macro_f1_ci_high", "accuracy"} <= set(shared)
        for k in shared:
            assert float(row[k]) == pytest.approx(metrics[k], abs=0, nan_ok=True), k
    assert len(report.gaps) == 2 and np.isfinite(report.gaps["gap"]).all()
    assert report.per_persona["lift"].notna().sum() == 2 * len(PERSONAS)
