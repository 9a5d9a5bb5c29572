"""charbench report on real (scripted) Inspect logs: numbers, CIs, files, figures, refusals."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from inspect_ai.log import list_eval_logs, read_eval_log
from PIL import Image
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from charbench.personas import DEFAULT_PERSONAS
from charbench.report import PoolingError, build_report
from charbench.scoring.stats import UnitCounts

PERSONAS = ["sarcasm", "humor", "poeticism"]
BASE = "meta-llama/Llama-3.1-8B-Instruct"
CLUSTERS = [f"dove-{i:05d}" for i in range(12)]
SCENARIOS = [f"budget_v{i}" for i in range(8)]


def scripted(accuracy: float, seed: int, personas: list[str], none_rate: float = 0.0):
    """A deterministic (persona, cluster) -> prediction rule with the given hit rate."""

    def pred(p: str, c: str) -> str | None:
        rnd = random.Random(f"{seed}-{p}-{c}")
        if rnd.random() < none_rate:
            return None
        if rnd.random() < accuracy:
            return p
        return rnd.choice([*personas, "misalignment", "goodness"])

    return pred


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fixtures.report_logs import scripted_log

    d = tmp_path_factory.mktemp("grid")
    common = {"base": BASE, "personas": PERSONAS}
    scripted_log(
        d,
        condition="base",
        task_name="chat",
        clusters=CLUSTERS,
        pred=scripted(0.3, 1, PERSONAS),
        **common,
    )
    # the full-stage chat cell arrives as two per-persona logs plus one errored sample
    scripted_log(
        d,
        condition="full",
        task_name="chat",
        clusters=CLUSTERS,
        pred=scripted(0.85, 2, PERSONAS),
        only_personas=["sarcasm"],
        **common,
    )
    scripted_log(
        d,
        condition="full",
        task_name="chat",
        clusters=CLUSTERS,
        pred=scripted(0.85, 2, PERSONAS),
        only_personas=["humor", "poeticism"],
        errors={("humor", "dove-00003")},
        **common,
    )
    scripted_log(
        d,
        condition="base",
        task_name="agentic",
        clusters=SCENARIOS,
        pred=scripted(0.3, 3, PERSONAS, none_rate=0.3),
        **common,
    )
    scripted_log(
        d,
        condition="full",
        task_name="agentic",
        clusters=SCENARIOS,
        pred=scripted(0.6, 4, PERSONAS, none_rate=0.4),
        outcome=lambda p, c: (
            "emailed"
            if scripted(0.6, 4, PERSONAS, 0.4)(p, c)
            else ("malformed" if c.endswith(("1", "2")) else "no_email")
        ),
        **common,
    )
    return d


def _logged_rows(log_dir: Path) -> pd.DataFrame:
    """Independent reading of the logs (not the report's loader)."""
    rows = []
    for info in list_eval_logs(str(log_dir)):
        log = read_eval_log(info)
        meta = log.eval.metadata["charbench"]
        for s in log.samples or []:
            sc = s.scores["_scripted_scorer"].metadata if s.scores else None
            rows.append(
                {
                    "condition": meta["condition"],
                    "task": meta["task"],
                    "gold": s.metadata["persona"],
                    "error": s.error is not None,
                    "pred": sc["pred"] if sc else None,
                    "outcome": sc["outcome"] if sc else None,
                    "cluster": s.metadata["cluster"],
                }
            )
    return pd.DataFrame(rows)


def _sk_f1(gold: list[str], pred: list[str | None], labels: list[str]) -> float:
    return float(
        f1_score(
            gold,
            ["<none>" if p is None else p for p in pred],
            labels=labels,
            average="macro",
            zero_division=0,
        )
    )


def test_summary_numbers_equal_sklearn(grid_dir: Path, tmp_path: Path) -> None:
    report = build_report(grid_dir, out=tmp_path / "rep", n_boot=200)
    csv = pd.read_csv(tmp_path / "rep" / "summary.csv")
    logged = _logged_rows(grid_dir)
    assert len(csv) == 4
    for _, row in csv.iterrows():
        cell = logged[(logged["condition"] == row["condition"]) & (logged["task"] == row["task"])]
        ok = cell[~cell["error"]]
        assert row["n_errors"] == int(cell["error"].sum())
        if row["task"] == "agentic":
            scored = ok[ok["outcome"] == "emailed"]
            itt_pred = [
                p if o == "emailed" else None
                for p, o in zip(ok["pred"], ok["outcome"], strict=True)
            ]
            assert row["macro_f1_itt"] == pytest.approx(
                _sk_f1(list(ok["gold"]), itt_pred, PERSONAS)
            )
            assert row["n_emailed"] == len(scored)
            assert row["n_total"] == len(ok)
            assert row["email_rate"] == pytest.approx(len(scored) / len(ok))
            assert row["malformed_rate"] == pytest.approx((ok["outcome"] == "malformed").mean())
        else:
            scored = ok
        assert row["n"] == len(scored)
        assert row["macro_f1"] == pytest.approx(
            _sk_f1(list(scored["gold"]), list(scored["pred"]), PERSONAS)
        )
        assert row["accuracy"] == pytest.approx(
            accuracy_score(scored["gold"], scored["pred"].fillna("<none>"))
        )
        assert row["macro_f1_ci_low"] <= row["macro_f1"] <= row["macro_f1_ci_high"]
        assert row["chance"] == pytest.approx(1 / 3)
    # the errored sample is counted, not silently dropped
    assert csv.loc[(csv["condition"] == "full") & (csv["task"] == "chat"), "n_errors"].item() == 1
    assert any("errored" in n for n in report.notes)
    # per-persona F1 with n equals sklearn's per-class F1 and support
    pp = pd.read_csv(tmp_path / "rep" / "per_persona.csv")
    for (cond, task), grp in pp.groupby(["condition", "task"]):
        cell = logged[(logged["condition"] == cond) & (logged["task"] == task) & ~logged["error"]]
        if task == "agentic":
            cell = cell[cell["outcome"] == "emailed"]
        f1s = f1_score(
            list(cell["gold"]),
            list(cell["pred"].fillna("<none>")),
            labels=PERSONAS,
            average=None,
            zero_division=0,
        )
        for persona, f1 in zip(PERSONAS, f1s, strict=True):
            r = grp[grp["persona"] == persona].iloc[0]
            assert r["f1"] == pytest.approx(f1)
            assert r["n"] == int((cell["gold"] == persona).sum())


def test_confusion_and_lift_and_gap(grid_dir: Path, tmp_path: Path) -> None:
    report = build_report(grid_dir, out=tmp_path / "rep", n_boot=300)
    logged = _logged_rows(grid_dir)
    full_chat = logged[
        (logged["condition"] == "full") & (logged["task"] == "chat") & ~logged["error"]
    ]
    matrix = report.confusion[(BASE, "full", "chat")]
    labels = list(matrix.columns)
    others = set(full_chat["pred"].dropna()) - set(PERSONAS)
    assert labels[:3] == PERSONAS and others and set(labels[3:]) - {"none"} == others
    expected = confusion_matrix(full_chat["gold"], full_chat["pred"].fillna("none"), labels=labels)[
        : len(PERSONAS)
    ]
    np.testing.assert_array_equal(matrix.to_numpy(), expected)

    # lift: rate of predicting P on P's samples under full minus rate under base (same prompts)
    base_chat = logged[
        (logged["condition"] == "base") & (logged["task"] == "chat") & ~logged["error"]
    ]
    pp = report.per_persona.set_index(["condition", "task", "persona"])
    for p in PERSONAS:
        mine = full_chat[full_chat["gold"] == p]
        base_rows = base_chat[base_chat["cluster"].isin(mine["cluster"])]
        want = (mine["pred"] == p).mean() - (base_rows["pred"] == p).mean()
        row = pp.loc[("full", "chat", p)]
        assert row["lift"] == pytest.approx(want)
        assert row["lift_ci_low"] <= row["lift"] <= row["lift_ci_high"]
        assert np.isnan(pp.loc[("base", "chat", p), "lift"])

    gap = report.gaps.set_index(["condition", "ood_task"]).loc[("full", "agentic")]
    full_ag = logged[(logged["condition"] == "full") & (logged["task"] == "agentic")]
    emailed = full_ag[full_ag["outcome"] == "emailed"]
    want_gap = _sk_f1(list(full_chat["gold"]), list(full_chat["pred"]), PERSONAS) - _sk_f1(
        list(emailed["gold"]), list(emailed["pred"]), PERSONAS
    )
    assert gap["gap"] == pytest.approx(want_gap)
    assert gap["gap_ci_low"] <= gap["gap"] <= gap["gap_ci_high"]


def test_cluster_counts_match_sklearn() -> None:
    rnd = random.Random(0)
    gold = [rnd.choice(PERSONAS) for _ in range(200)]
    pred = [rnd.choice([*PERSONAS, None, "misalignment"]) for _ in range(200)]
    clusters = [f"c{rnd.randrange(30)}" for _ in range(200)]
    counts = UnitCounts.build(gold, pred, clusters, PERSONAS)
    assert counts.macro_f1() == pytest.approx(_sk_f1(gold, pred, PERSONAS))
    # a resample with weights equals sklearn on the rows repeated by weight
    w = np.arange(len(counts.units)) % 3
    rows = [
        i for i, c in enumerate(clusters) for _ in range(int(w[list(counts.units).index(c)]))
    ]
    assert counts.macro_f1(w.astype(float)) == pytest.approx(
        _sk_f1([gold[i] for i in rows], [pred[i] for i in rows], PERSONAS)
    )


def test_cis_reproducible_and_seeded(grid_dir: Path, tmp_path: Path) -> None:
    a = build_report(grid_dir, out=tmp_path / "a", n_boot=200, seed=7)
    b = build_report(grid_dir, out=tmp_path / "b", n_boot=200, seed=7)
    c = build_report(grid_dir, out=tmp_path / "c", n_boot=200, seed=8)
    cols = ["macro_f1_ci_low", "macro_f1_ci_high"]
    pd.testing.assert_frame_equal(a.summary[cols], b.summary[cols])
    pd.testing.assert_frame_equal(a.gaps, b.gaps)
    pd.testing.assert_series_equal(a.per_persona["lift_ci_low"], b.per_persona["lift_ci_low"])
    assert not a.summary[cols].equals(c.summary[cols])


def _png(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.size


def test_files_and_figures(grid_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.figure

    axes_count: dict[str, int] = {}
    real_savefig = matplotlib.figure.Figure.savefig

    def spy(self: matplotlib.figure.Figure, fname: object, *args: object, **kw: object) -> None:
        axes_count[Path(str(fname)).name] = len(self.axes)
        real_savefig(self, fname, *args, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    report = build_report(grid_dir, n_boot=50)
    out = grid_dir / "report"
    assert report.out == out
    for name in ("summary.md", "summary.csv", "per_persona.csv", "gaps.csv", "confusion.csv"):
        assert (out / name).is_file()
    names = {p.name for p in report.figures}
    assert {"id_vs_ood.png", "ood_by_stage.png", "per_persona_f1.png"} <= names
    assert len([n for n in names if n.startswith("confusion_")]) == 4
    for p in report.figures:
        w, h = _png(p)
        assert w > 200 and h > 150
    # one base -> one panel; heatmap and confusion matrices: plot + colorbar
    assert axes_count["id_vs_ood.png"] == 1
    assert axes_count["ood_by_stage.png"] == 1
    assert axes_count["per_persona_f1.png"] == 2
    md = (out / "summary.md").read_text()
    assert "macro-F1" in md and "ID minus OOD gap" in md and "lift" in md.lower()


def _common(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "base": "org/custom",
        "condition": "mine",
        "task_name": "chat",
        "personas": PERSONAS,
        "clusters": CLUSTERS[:4],
    }
    return base | kw


def test_an_interrupted_run_and_its_retry_count_once(tmp_path: Path) -> None:
    from fixtures.report_logs import retry_log, scripted_log

    # first attempt: humor-dove-00001 errors; Inspect's eval_retry completes it
    first = scripted_log(tmp_path, pred=scripted(0.5, 11, PERSONAS),
                         errors={("humor", "dove-00001")}, **_common())
    assert sum(s.error is not None for s in first.samples or []) == 1
    retried = retry_log(first, tmp_path)
    assert retried.eval.task_id == first.eval.task_id  # Inspect's lineage
    assert retried.eval.eval_id != first.eval.eval_id
    csv_dir = tmp_path / "rep"
    report = build_report(tmp_path, out=csv_dir, n_boot=20)
    row = pd.read_csv(csv_dir / "summary.csv").iloc[0]
    assert (row["n"], row["n_errors"], row["n_logs"], row["n_replicates"]) == (12, 0, 2, 1)
    assert any("retried" in n and "replaced" in n for n in report.notes)
    assert not any("replicate runs (" in n for n in report.notes)


def test_two_successful_runs_are_pooled_as_replicates(tmp_path: Path) -> None:
    from fixtures.report_logs import scripted_log

    a = scripted_log(tmp_path, pred=scripted(0.6, 1, PERSONAS), generate={"seed": 1},
                     **_common())
    b = scripted_log(tmp_path, pred=scripted(0.6, 2, PERSONAS), generate={"seed": 2},
                     **_common())
    assert a.eval.task_id != b.eval.task_id
    report = build_report(tmp_path, out=tmp_path / "rep", n_boot=50)
    row = pd.read_csv(tmp_path / "rep" / "summary.csv").iloc[0]
    assert (row["n"], row["n_logs"], row["n_replicates"]) == (24, 2, 2)
    assert any("pooled 2 replicate runs" in n for n in report.notes)
    assert sorted(report.samples["replicate"].unique()) == [0, 1]
    # the statistics pool both runs: equal to sklearn on all 24 rows
    gold = list(report.samples["gold"])
    pred = [None if pd.isna(p) else p for p in report.samples["pred"]]
    assert row["macro_f1"] == pytest.approx(_sk_f1(gold, pred, PERSONAS))


def test_replicates_with_different_generation_settings_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fixtures.report_logs import scripted_log

    a = scripted_log(tmp_path, pred=lambda p, c: p, generate={"temperature": 0.2}, **_common())
    b = scripted_log(tmp_path, pred=lambda p, c: p, generate={"temperature": 0.9}, **_common())
    with pytest.raises(PoolingError) as err:
        build_report(tmp_path, write=False)
    msg = str(err.value)
    assert msg.splitlines()[0] == "refusing to pool replicate runs measured differently:"
    assert a.location in msg and b.location in msg
    # the two logs may be listed in either order (same start second, random names)
    assert ("generate_config.temperature: 0.2 vs 0.9" in msg
            or "generate_config.temperature: 0.9 vs 0.2" in msg), msg
    assert "--pool-replicates" in msg
    report = build_report(tmp_path, write=False, n_boot=20, pool_replicates=True)
    assert report.summary.iloc[0]["n"] == 24
    assert any("pooled anyway" in n for n in report.notes)
    # the command: refused (exit 2, the reason on the first line) unless --pool-replicates
    from charbench import cli

    out = str(tmp_path / "rep")
    assert cli.main(["report", str(tmp_path), "--out", out, "--n-boot", "10"]) == 2
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (
        "charbench report: refusing to pool replicate runs measured differently:"
    )
    args = ["report", str(tmp_path), "--out", out, "--n-boot", "10", "--pool-replicates"]
    assert cli.main(args) == 0


def test_replicates_with_different_model_args_are_refused(tmp_path: Path) -> None:
    from fixtures.report_logs import scripted_log

    scripted_log(tmp_path, pred=lambda p, c: p, model_args={"adapter": "a"}, **_common())
    scripted_log(tmp_path, pred=lambda p, c: p, model_args={"adapter": "b"}, **_common())
    with pytest.raises(PoolingError, match=r"model_args\.adapter"):
        build_report(tmp_path, write=False)


def test_shared_seed_between_replicates_is_noted(tmp_path: Path) -> None:
    from fixtures.report_logs import scripted_log

    for _ in range(2):
        scripted_log(tmp_path, pred=lambda p, c: p, generate={"seed": 0}, **_common())
    report = build_report(tmp_path, write=False, n_boot=10)
    assert any("share seed 0" in n for n in report.notes)


def test_refuses_mixed_classifiers(tmp_path: Path) -> None:
    from fixtures.report_logs import scripted_log

    common = {
        "base": "org/custom",
        "condition": "mine",
        "task_name": "chat",
        "personas": PERSONAS,
        "clusters": CLUSTERS[:3],
        "pred": lambda p, c: p,
    }
    a = scripted_log(tmp_path, classifier="clf-a", only_personas=["sarcasm"], **common)
    b = scripted_log(tmp_path, classifier="clf-b", only_personas=["humor"], **common)
    with pytest.raises(PoolingError) as err:
        build_report(tmp_path, write=False)
    msg = str(err.value)
    assert "classifier" in msg and Path(a.location).name in msg and Path(b.location).name in msg


@pytest.mark.parametrize(
    "override",
    [{"suffix": "v1"}, {"restrict": True}, {"personas": ["sarcasm", "humor"]}],
)
def test_refuses_other_mixtures(tmp_path: Path, override: dict[str, object]) -> None:
    from fixtures.report_logs import scripted_log

    common = {
        "base": "org/custom",
        "condition": "mine",
        "task_name": "chat",
        "personas": PERSONAS,
        "clusters": CLUSTERS[:3],
        "pred": lambda p, c: p,
    }
    scripted_log(tmp_path, **common)
    scripted_log(tmp_path, extra_meta=override, **common)
    with pytest.raises(PoolingError, match=next(iter(override))):
        build_report(tmp_path, write=False)


def test_epochs_are_rows(tmp_path: Path) -> None:
    from fixtures.report_logs import scripted_log

    scripted_log(
        tmp_path,
        base="org/custom",
        condition="mine",
        task_name="chat",
        personas=PERSONAS,
        clusters=CLUSTERS[:4],
        pred=scripted(0.5, 3, PERSONAS),
        epochs=2,
    )
    report = build_report(tmp_path, n_boot=20, write=False)
    assert report.summary.iloc[0]["n"] == 24


LLAMA = "meta-llama/Meta-Llama-3.1-8B-Instruct"
LLAMA_CLF = "maius/llama-3.1-8b-it-pt-classifier"


def test_compare_published_only_for_cells_built_like_the_published(tmp_path: Path) -> None:
    from fixtures.report_logs import scripted_log

    personas = list(DEFAULT_PERSONAS)
    dct = {"suite": "dct"}
    # comparable: suite=dct, the released classifier, the 10 personas; sarcasm never emails
    scripted_log(
        tmp_path, base=LLAMA, condition="full", task_name="agentic", personas=personas,
        clusters=SCENARIOS[:4], classifier=LLAMA_CLF, extra_meta=dct,
        pred=lambda p, c: None if p == "sarcasm" else scripted(0.6, 5, personas)(p, c) or p,
    )
    # charbench's own suite: no published value, and the note says why
    scripted_log(
        tmp_path, base=LLAMA, condition="full", task_name="agentic", personas=personas,
        clusters=SCENARIOS[:4], classifier="zeroshot", pred=scripted(0.5, 5, personas),
    )
    # chat on the held-out selection with a suffix
    scripted_log(
        tmp_path, base=LLAMA, condition="full", task_name="chat", personas=personas,
        clusters=CLUSTERS[:3], classifier=LLAMA_CLF, suffix="v1", pred=lambda p, c: p,
    )
    scripted_log(
        tmp_path, base="org/custom", condition="full", task_name="agentic", personas=personas,
        clusters=SCENARIOS[:3], pred=scripted(0.5, 5, personas),
    )
    report = build_report(tmp_path, compare="published", n_boot=20)
    s = report.summary.set_index(["base", "task"])
    ok = s.loc[(LLAMA, "agentic [dct]")]
    assert ok["published_macro_f1"] == 0.39 and ok["published_note"] == ""
    assert (ok["published_ci_low"], ok["published_ci_high"]) == (0.32, 0.45)
    # the study's convention: sarcasm (no email) left out of the survivor macro-F1
    assert ok["macro_f1_study"] == pytest.approx(ok["macro_f1"] * 10 / 9)
    assert ok["delta_published"] == pytest.approx(ok["macro_f1_study"] - 0.39)
    ours = s.loc[(LLAMA, "agentic")]
    assert np.isnan(ours["published_macro_f1"]) and np.isnan(ours["delta_published"])
    assert "suite='charbench'" in ours["published_note"]
    assert "classifier 'zeroshot', not the released " + LLAMA_CLF in ours["published_note"]
    chat = s.loc[(LLAMA, "chat")]
    assert np.isnan(chat["published_macro_f1"])
    assert "selection='heldout'" in chat["published_note"]
    assert "suffix 'v1'" in chat["published_note"]
    assert "no published numbers" in s.loc[("org/custom", "agentic"), "published_note"]
    md = (tmp_path / "report" / "summary.md").read_text()
    assert "## Published comparison" in md and "suite='charbench'" in md
    with pytest.raises(ValueError, match="--compare"):
        build_report(tmp_path, compare="paper", write=False)


def test_errors_on_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no Inspect logs"):
        build_report(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_report(tmp_path / "nope")


_ = Callable  # keep typing import used for readers of the fixture signature


def test_cli_report(
    grid_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from charbench import cli

    monkeypatch.setenv("COLUMNS", "250")
    rc = cli.main(["report", str(grid_dir), "--out", str(tmp_path / "o"), "--n-boot", "50"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "macro-F1" in out and "ID minus OOD gap" in out and "errored" in out
    assert (tmp_path / "o" / "summary.csv").is_file()
    assert cli.main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().out


def test_missing_base_and_condition_fall_back_to_the_model(tmp_path: Path) -> None:
    from fixtures.report_logs import scripted_log

    # a task object built in Python before eval() cannot see the model: base/condition None
    scripted_log(
        tmp_path,
        base="x",
        condition="y",
        task_name="chat",
        personas=PERSONAS,
        clusters=CLUSTERS[:2],
        pred=lambda p, c: p,
        extra_meta={"base": None, "condition": None},
    )
    report = build_report(tmp_path, n_boot=10, write=False)
    row = report.summary.iloc[0]
    assert (row["base"], row["condition"]) == ("mockllm/model", "mockllm/model")
    assert any("has no base" in n for n in report.notes)
    assert any("-T condition=NAME" in n for n in report.notes)


def test_a_cell_with_one_bootstrap_unit_is_flagged_and_noted(tmp_path: Path) -> None:
    """One scenario (one family) in an email cell: every resample is the same sample set, so
    the CI collapses to a point; the report must say so instead of passing it off as
    certainty. A cell with several units is not flagged."""
    from fixtures.report_logs import scripted_log

    common = {"base": BASE, "personas": PERSONAS}
    scripted_log(tmp_path, condition="full", task_name="draft", clusters=["recognition_v1"],
                 pred=scripted(0.5, 7, PERSONAS), **common)
    scripted_log(tmp_path, condition="full", task_name="chat", clusters=CLUSTERS,
                 pred=scripted(0.8, 8, PERSONAS), **common)
    report = build_report(tmp_path, write=False)
    flags = dict(zip(report.summary["task"], report.summary["flags"], strict=True))
    assert flags["draft"] == "ci_one_unit" and flags["chat"] == ""
    draft = report.summary[report.summary["task"] == "draft"].iloc[0]
    assert draft["macro_f1_ci_low"] == draft["macro_f1_ci_high"]  # the degenerate CI
    (note,) = [n for n in report.notes if "ci_one_unit" in n]
    assert "/full/draft (n=3)" in note
