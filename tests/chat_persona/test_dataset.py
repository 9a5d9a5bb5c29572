"""Prompt sources and selection rules of chat_persona."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from charbench.chat_persona.dataset import (
    HELDOUT_START,
    PURE_DOVE_FILENAME,
    PURE_DOVE_REVISION,
    PromptSource,
    builtin_prompts,
    load_prompt_source,
    parse_prompt_rows,
    read_prompts_file,
    select_rows,
)

from .conftest import (
    EMPTY_CONVERSATION_ROWS,
    EMPTY_INPUT_ROWS,
    N_DOVE_ROWS,
    make_dove_rows,
    write_jsonl,
)


def _first_input(row: dict[str, Any]) -> str:
    conv = row["conversation"]
    return conv[0]["input"] if conv else ""


def _dove_source(rows: list[dict[str, Any]]) -> PromptSource:
    texts = tuple(_first_input(r) for r in rows)
    return PromptSource(name="pure-dove", texts=texts, pure_dove=True, id_prefix="dove")


# --- selections ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 300, 500, N_DOVE_ROWS - 7])
def test_dct_reproduces_the_seeded_shuffle_rule(dove_rows: list[dict[str, Any]], n: int) -> None:
    # The rule as DCT's study states it, written out independently of the implementation.
    idx = list(range(len(dove_rows)))
    random.Random(0).shuffle(idx)
    expected = [i for i in idx if _first_input(dove_rows[i])][:n]

    got = select_rows(_dove_source(dove_rows), "dct", n)

    assert [r.row for r in got] == expected
    assert [r.prompt for r in got] == [_first_input(dove_rows[i]) for i in expected]
    assert got[0].prompt_id == f"dove-{expected[0]:05d}"


def test_dct_skips_empty_conversations_and_inputs(dove_rows: list[dict[str, Any]]) -> None:
    usable = N_DOVE_ROWS - len(EMPTY_CONVERSATION_ROWS) - len(EMPTY_INPUT_ROWS)
    got = {r.row for r in select_rows(_dove_source(dove_rows), "dct", usable)}
    assert len(got) == usable
    assert not got & (EMPTY_CONVERSATION_ROWS | EMPTY_INPUT_ROWS)
    with pytest.raises(ValueError, match=rf"has {usable} non-empty rows"):
        select_rows(_dove_source(dove_rows), "dct", usable + 1)


def test_oct_takes_first_rows_in_file_order(dove_rows: list[dict[str, Any]]) -> None:
    got = select_rows(_dove_source(dove_rows), "oct", 8)
    assert [r.row for r in got] == [0, 1, 2, 4, 6, 7, 8, 9]  # 3: empty conversation, 5: empty input
    assert got[0].prompt == "dove question 0"


def _heldout_rows(n_rows: int, n: int, empty: frozenset[int]) -> list[int]:
    order = list(range(500, n_rows))
    random.Random(0).shuffle(order)
    return [i for i in order if i not in empty][:n]


def test_heldout_is_a_seeded_shuffle_of_the_rows_from_500_on(
    dove_rows: list[dict[str, Any]],
) -> None:
    got = select_rows(_dove_source(dove_rows), "heldout", 50)
    assert HELDOUT_START == 500
    want = _heldout_rows(N_DOVE_ROWS, 50, EMPTY_CONVERSATION_ROWS | EMPTY_INPUT_ROWS)
    assert [r.row for r in got] == want
    assert all(r.row >= 500 for r in got)
    assert [r.row for r in got] != sorted(r.row for r in got)  # not a block in file order
    assert max(r.row for r in got) > 500 + 100
    assert got[0].prompt_id == f"dove-{got[0].row:05d}"
    assert [r.row for r in select_rows(_dove_source(dove_rows), "heldout", 50)] == want


def test_heldout_on_a_file_shorter_than_500_rows_says_what_to_use(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "short.jsonl", make_dove_rows(120))
    with pytest.raises(ValueError) as err:
        select_rows(read_prompts_file(path), "heldout", 10)
    msg = str(err.value)
    assert "selection=dct" in msg and "selection=oct" in msg and "more than 500 rows" in msg
    assert "n=0" not in msg
    assert len(select_rows(read_prompts_file(path), "oct", 10)) == 10


def test_whitespace_only_prompt_is_rejected_with_its_row(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ws.jsonl", [{"prompt": "ok?"}, {"prompt": " \n\t "}])
    with pytest.raises(ValueError, match=r"ws.jsonl, row 1: the prompt is empty or whitespace"):
        read_prompts_file(path)
    dove = write_jsonl(tmp_path / "dove.jsonl", [{"conversation": [{"input": "  \n"}]}])
    assert read_prompts_file(dove).texts == ("",)  # a blank Pure-Dove input is skipped


def test_unsafe_characters_are_replaced_and_counted_on_load(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "lone \\ud800 x"}\n{"prompt": "nul\\u0000 and \\u0001"}\n'
                    '{"prompt": "fine"}\n', encoding="utf-8")
    src = read_prompts_file(path)
    assert src.texts == ("lone \ufffd x", "nul\ufffd and \ufffd", "fine")
    rows = select_rows(src, "oct", 3)
    assert [r.sanitized for r in rows] == [1, 2, 0]
    for text in src.texts:
        text.encode("utf-8")  # encodable: the log writer can write it


def test_heldout_n_larger_than_available_names_the_count(dove_rows: list[dict[str, Any]]) -> None:
    available = N_DOVE_ROWS - 500 - 4  # rows 501, 520, 640, 777 are empty
    assert len(select_rows(_dove_source(dove_rows), "heldout", available)) == available
    with pytest.raises(ValueError, match=rf"n={available + 1} is larger.*has {available} non-empty"):
        select_rows(_dove_source(dove_rows), "heldout", available + 1)


def test_plain_sources_are_all_held_out() -> None:
    src = builtin_prompts()
    assert len(src.texts) >= 40 and all(src.texts)
    held = select_rows(src, "heldout", 10)
    assert [r.row for r in held] == list(range(10))
    assert [r.row for r in select_rows(src, "oct", 10)] == list(range(10))
    assert held[3].prompt_id == "builtin-00003"
    dct = select_rows(src, "dct", len(src.texts))
    assert sorted(r.row for r in dct) == list(range(len(src.texts)))
    assert [r.row for r in dct] != list(range(len(src.texts)))


@pytest.mark.parametrize(
    ("selection", "n", "message"),
    [
        ("random", 5, r"unknown selection 'random'; valid selections are dct, oct, heldout"),
        ("dct", 0, "n must be a positive integer"),
        ("dct", -3, "n must be a positive integer"),
        ("dct", True, "n must be a positive integer"),
        ("oct", "5", "n must be a positive integer"),
    ],
)
def test_selection_errors(selection: str, n: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        select_rows(builtin_prompts(), selection, n)


# --- prompt files -------------------------------------------------------------------------


def test_jsonl_of_pure_dove_rows(dove_file: Path) -> None:
    src = read_prompts_file(dove_file)
    assert src.pure_dove and src.id_prefix == "dove" and len(src.texts) == N_DOVE_ROWS
    assert src.texts[0] == "dove question 0" and src.texts[3] == "" and src.texts[5] == ""
    # a local copy of Pure-Dove gets the same selections as the Hub copy
    want = _heldout_rows(N_DOVE_ROWS, 2, EMPTY_CONVERSATION_ROWS | EMPTY_INPUT_ROWS)
    assert [r.row for r in select_rows(src, "heldout", 2)] == want


def test_json_array_of_plain_rows(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"prompt": "a?"}, {"prompt": "b?"}, {"prompt": "c?", "x": 1}]))
    src = read_prompts_file(path)
    assert not src.pure_dove and src.texts == ("a?", "b?", "c?")
    rows = select_rows(src, "heldout", 2)
    assert [(r.row, r.prompt, r.prompt_id) for r in rows] == [
        (0, "a?", "prompt-00000"),
        (1, "b?", "prompt-00001"),
    ]


def test_json_array_of_dove_rows(tmp_path: Path) -> None:
    path = tmp_path / "dove.json"
    path.write_text(json.dumps([{"conversation": [{"input": "hi", "output": "yo"}]}]))
    src = load_prompt_source(str(path))
    assert src.pure_dove and src.texts == ("hi",)


def test_builtin_is_selected_by_name() -> None:
    assert load_prompt_source("builtin").name == "builtin"
    assert load_prompt_source(" BUILTIN ").texts == builtin_prompts().texts


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prompt": "ok"}\n{"prompt": \n', r"line 2 is not valid JSON"),
        ("", r"has no rows"),
        ("[]", r"has no rows"),
        ('"just a string"', r"expected a JSON array of rows or JSONL"),
        ('["a bare string"]', r"row 0: expected a JSON object"),
        ('{"text": "no prompt key"}', r"row 0: a row needs 'conversation' \(Pure-Dove\) or 'prompt'"),
        ('{"prompt": 3}', r"'prompt' must be a string"),
        ('{"conversation": "hi"}', r"'conversation' must be a list"),
        ('{"conversation": [{"input": 5}]}', r"string 'input'"),
        (
            '{"prompt": "a"}\n{"conversation": [{"input": "b"}]}\n',
            r"mixes Pure-Dove rows \('conversation'\) and plain \('prompt'\) rows",
        ),
    ],
)
def test_malformed_prompt_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_prompts_file(path)


def test_unreadable_prompt_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"prompts file '.*missing.jsonl' not found.*-T prompts=builtin"):
        load_prompt_source(str(tmp_path / "missing.jsonl"))
    with pytest.raises(ValueError, match="not found"):
        load_prompt_source(str(tmp_path))  # a directory
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="cannot read prompts file"):
        read_prompts_file(binary)
    with pytest.raises(ValueError, match="prompts must be a path"):
        load_prompt_source("  ")


def test_parse_prompt_rows_reports_file_name() -> None:
    with pytest.raises(ValueError, match=r"prompts file mine\.jsonl"):
        parse_prompt_rows("{", "mine.jsonl")


# --- Pure-Dove through the Hugging Face cache ----------------------------------------------


def _install_fake_pure_dove(cache: Path, rows: list[dict[str, Any]]) -> Path:
    """Lay rows out as huggingface_hub's cache does for the pinned revision."""
    repo = cache / "datasets--LDJnr--Pure-Dove"
    snapshot = repo / "snapshots" / PURE_DOVE_REVISION
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(PURE_DOVE_REVISION)
    return write_jsonl(snapshot / PURE_DOVE_FILENAME, rows)


_SCRIPT = textwrap.dedent(
    """
    import json
    from charbench.chat_persona.dataset import load_prompt_source, select_rows, PromptsUnavailableError
    try:
        src = load_prompt_source(None)
    except PromptsUnavailableError as e:
        print(json.dumps({"error": str(e)}))
    else:
        rows = select_rows(src, "heldout", 3)
        print(json.dumps({"name": src.name, "n": len(src.texts), "rows": [r.row for r in rows],
                          "first": rows[0].prompt, "ids": [r.prompt_id for r in rows]}))
    """
)


def _run_offline(cache: Path) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    env.pop("HF_HOME", None)
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_pure_dove_loads_from_offline_hf_cache(tmp_path: Path, dove_rows: list[dict[str, Any]]) -> None:
    _install_fake_pure_dove(tmp_path / "hub", dove_rows)
    out = _run_offline(tmp_path / "hub")
    want = _heldout_rows(N_DOVE_ROWS, 3, EMPTY_CONVERSATION_ROWS | EMPTY_INPUT_ROWS)
    assert out == {
        "name": "pure-dove",
        "n": N_DOVE_ROWS,
        "rows": want,
        "first": f"dove question {want[0]}",
        "ids": [f"dove-{r:05d}" for r in want],
    }

    # with an empty cache the error says how to run offline
    (tmp_path / "empty").mkdir()
    err = _run_offline(tmp_path / "empty")["error"]
    assert "LDJnr/Pure-Dove" in err and PURE_DOVE_REVISION in err
    assert "-T prompts=PATH" in err and "HF_HUB_OFFLINE=1" in err and "-T prompts=builtin" in err
