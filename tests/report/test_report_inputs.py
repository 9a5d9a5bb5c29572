"""charbench report on awkward inputs: corrupt files, an --out file, symbolic links, and the
agreement of the report's numbers with the metrics in the logs."""

from __future__ import annotations

import math
import os
import random
import shutil
import zipfile
from pathlib import Path

import pytest
from inspect_ai.log import read_eval_log

from charbench.report import LogReadError, build_report

PERSONAS = ["sarcasm", "humor", "poeticism"]
CLUSTERS = [f"dove-{i:05d}" for i in range(6)]
SCENARIOS = [f"budget_v{i}" for i in range(6)]


def _pred(seed: int, accuracy: float = 0.6, none_rate: float = 0.0):  # type: ignore[no-untyped-def]
    def pred(p: str, c: str) -> str | None:
        rnd = random.Random(f"{seed}-{p}-{c}")
        if rnd.random() < none_rate:
            return None
        return p if rnd.random() < accuracy else rnd.choice(PERSONAS)

    return pred


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fixtures.report_logs import scripted_log

    d = tmp_path_factory.mktemp("good")
    scripted_log(d, base="org/m", condition="mine", task_name="chat", personas=PERSONAS,
                 clusters=CLUSTERS, pred=_pred(1))
    return d


def _corrupt(kind: str, path: Path, good: Path) -> None:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(random.Random(0).randbytes(3000))
    else:  # truncated: the first half of a real log
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("kind", ["truncated", "empty", "random"])
def test_an_unreadable_log_is_skipped_with_a_warning(
    kind: str, good_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from charbench import cli

    logs = tmp_path / "logs"
    shutil.copytree(good_dir, logs)
    good = next(logs.glob("*.eval"))
    bad = logs / f"2026-01-01T00-00-00+00-00_broken_{kind}.eval"
    _corrupt(kind, bad, good)
    report = build_report(logs, write=False, n_boot=20)
    assert report.summary.iloc[0]["n"] == len(PERSONAS) * len(CLUSTERS)
    assert len(report.skipped) == 1 and report.skipped[0].startswith(f"{bad}: ")
    assert any("1 unreadable file(s) skipped" in n for n in report.notes)
    monkeypatch.setenv("COLUMNS", "250")
    assert cli.main(["report", str(logs), "--out", str(tmp_path / "o"), "--n-boot", "10"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"warning: skipped {bad}: not a readable Inspect log")
    with pytest.raises(LogReadError, match="not a readable Inspect log"):
        build_report(logs, write=False, strict=True)
    assert cli.main(["report", str(logs), "--strict", "--out", str(tmp_path / "s")]) == 2
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"charbench report: {bad}: not a readable Inspect log")


def test_out_naming_an_existing_file_is_a_clear_error(
    good_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from charbench import cli

    target = tmp_path / "report.txt"
    target.write_text("keep me")
    assert cli.main(["report", str(good_dir), "--out", str(target)]) == 2
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (
        f"charbench report: --out {str(target)!r} is an existing file; give a directory for "
        "the report (it is created if missing)"
    )
    assert target.read_text() == "keep me"


def test_symbolic_links_to_log_folders_are_followed_once(good_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    os.symlink(good_dir, runs / "run-a", target_is_directory=True)
    os.symlink(good_dir, runs / "run-a-again", target_is_directory=True)  # same folder twice
    os.symlink(runs, runs / "loop", target_is_directory=True)  # a cycle
    report = build_report(runs, write=False, n_boot=20)
    assert report.summary.iloc[0]["n"] == len(PERSONAS) * len(CLUSTERS)
    assert report.summary.iloc[0]["n_logs"] == 1


def test_report_numbers_equal_the_metrics_in_each_log(tmp_path: Path) -> None:
    """Same logs -> the report's numbers equal the logs' own metrics, by construction."""
    from fixtures.report_logs import scripted_log

    logs = [
        scripted_log(tmp_path, base="org/m", condition="mine", task_name="chat",
                     personas=PERSONAS, clusters=CLUSTERS, pred=_pred(2, none_rate=0.1),
                     epochs=2),
        scripted_log(tmp_path, base="org/m", condition="mine", task_name="agentic",
                     personas=PERSONAS, clusters=SCENARIOS, pred=_pred(3, 0.5, 0.5),
                     families=lambda c: c.split("_")[0] + str(int(c[-1]) % 2),
                     resample="family",
                     outcome=lambda p, c: "emailed" if _pred(3, 0.5, 0.5)(p, c)
                     else ("unparsed_call" if c.endswith(("1", "2")) else "malformed")),
        scripted_log(tmp_path, base="org/m", condition="mine", task_name="draft",
                     personas=PERSONAS, clusters=SCENARIOS, pred=_pred(4, 0.7, 0.2),
                     resample="row"),
    ]
    report = build_report(tmp_path, write=False)  # the metrics' defaults: seed 0, 1000
    summary = report.summary.set_index("task")
    checked = 0
    for log in logs:
        row = summary.loc[log.eval.metadata["charbench"]["task"]]
        metrics = read_eval_log(log.location).results.scores[0].metrics  # type: ignore[union-attr]
        for key, metric in metrics.items():
            if key not in row.index:
                continue
            ours, theirs = float(row[key]), float(metric.value)
            assert (math.isnan(ours) and math.isnan(theirs)) or ours == theirs, key
            checked += 1
    assert checked >= 30
    assert summary.loc["agentic", "ci_unit"] == "family"
    assert summary.loc["draft", "ci_unit"] == "row"
    assert summary.loc["chat", "ci_unit"] == "cluster"
    # per-persona outcome rates equal the log's too
    pp = report.per_persona.set_index(["task", "persona"])
    agentic_metrics = read_eval_log(logs[1].location).results.scores[0].metrics  # type: ignore[union-attr]
    kinds = [k for k in ("email_rate", "malformed_rate", "unparsed_call_rate")
             if f"{k}_humor" in agentic_metrics]
    assert len(kinds) >= 2
    for p in PERSONAS:
        for kind in kinds:
            assert pp.loc[("agentic", p), kind] == agentic_metrics[f"{kind}_{p}"].value


def test_unparsed_calls_are_flagged_with_the_fix(tmp_path: Path) -> None:
    from fixtures.report_logs import scripted_log

    scripted_log(tmp_path, base="org/m", condition="mine", task_name="agentic",
                 personas=PERSONAS, clusters=SCENARIOS, pred=lambda p, c: None,
                 outcome=lambda p, c: "unparsed_call" if p == "humor" else "no_email")
    report = build_report(tmp_path, out=tmp_path / "rep", n_boot=10)
    row = report.summary.iloc[0]
    assert row["flags"] == "unparsed_call"
    assert row["unparsed_call_rate"] == pytest.approx(1 / 3)
    note = next(n for n in report.notes if "unparsed_call" in n)
    assert "-T text_tool_calls=true" in note and "docs/serving.md" in note
    assert "unparsed_call" in (tmp_path / "rep" / "summary.md").read_text()


def test_suites_and_persona_sets_are_never_pooled(tmp_path: Path) -> None:
    from fixtures.report_logs import scripted_log

    common = {"base": "org/m", "condition": "mine", "task_name": "agentic",
              "personas": PERSONAS, "clusters": SCENARIOS, "pred": _pred(5)}
    scripted_log(tmp_path, **common)
    scripted_log(tmp_path, extra_meta={"suite": "dct"}, **common)
    scripted_log(tmp_path, extra_meta={"persona_set": {"name": "mine", "hash": "ab12"}},
                 **common)
    report = build_report(tmp_path, write=False, n_boot=10)
    tasks = sorted(report.summary["task"])
    assert tasks == ["agentic", "agentic [dct]", "agentic [set mine@ab12]"]
    assert set(report.summary["n_replicates"]) == {1}


def test_an_old_log_without_the_new_fields_reads_as_before(tmp_path: Path) -> None:
    """Score metadata as the first release wrote it (no text, family, epoch, replicate)."""
    from fixtures.report_logs import scripted_log

    log = scripted_log(tmp_path, base="org/m", condition="mine", task_name="chat",
                       personas=PERSONAS, clusters=CLUSTERS, pred=_pred(6))
    old_keys = {"gold", "pred", "probs", "labels", "cluster", "classifier", "restrict",
                "outcome"}
    with zipfile.ZipFile(log.location) as z:
        names = z.namelist()
    assert any(n.startswith("samples/") for n in names)
    full = read_eval_log(log.location)
    for sample in full.samples or []:
        for score in (sample.scores or {}).values():
            score.metadata = {k: v for k, v in (score.metadata or {}).items() if k in old_keys}
    from inspect_ai.log import write_eval_log

    write_eval_log(full, log.location)
    report = build_report(tmp_path, write=False, n_boot=10)
    assert report.summary.iloc[0]["n"] == len(PERSONAS) * len(CLUSTERS)
    assert report.summary.iloc[0]["ci_unit"] == "cluster"


def test_replicates_with_different_ci_units_use_the_first_and_say_so(tmp_path: Path) -> None:
    from fixtures.report_logs import scripted_log

    common = {"base": "org/m", "condition": "mine", "task_name": "chat", "personas": PERSONAS,
              "clusters": CLUSTERS}
    scripted_log(tmp_path, pred=_pred(7), resample="row", generate={"seed": 1}, **common)
    scripted_log(tmp_path, pred=_pred(8), resample="cluster", generate={"seed": 2}, **common)
    report = build_report(tmp_path, write=False, n_boot=10)
    unit = report.summary.iloc[0]["ci_unit"]
    # the first run's unit (runs created in the same second are ordered by file name)
    first = report.logs.sort_values("replicate")["log"].iloc[0]
    results = read_eval_log(first, header_only=True).results
    assert results is not None
    assert unit == results.scores[0].metrics["macro_f1"].params["resample"]
    note = next(n for n in report.notes if "different bootstrap units" in n)
    assert "row" in note and "cluster" in note and f"use {unit} (the first run's)" in note


def test_the_builtin_persona_set_labels_one_cell_with_or_without_its_hash() -> None:
    from types import SimpleNamespace

    from charbench.contracts import PersonaSet
    from charbench.personas import builtin_set
    from charbench.report.lineage import persona_set_label

    builtin = builtin_set().content_hash
    assert persona_set_label(SimpleNamespace(persona_set=PersonaSet())) == "oct"
    assert persona_set_label(SimpleNamespace(persona_set=PersonaSet(hash=builtin))) == "oct"
    # a file that calls itself "oct" but holds other descriptions is its own cell
    other = PersonaSet(name="oct", hash="sha256:0000")
    assert persona_set_label(SimpleNamespace(persona_set=other)) == "oct@sha256:0000"
