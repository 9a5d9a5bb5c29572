"""The README's -T/-M tables are generated from the docstrings and must be up to date."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_param_docs", ROOT / "scripts" / "gen_param_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_parameter_tables_are_in_sync_with_the_docstrings() -> None:
    gen = _script()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert gen.render(readme, gen.sections()) == readme, (
        "README.md -T/-M tables are stale: run `python scripts/gen_param_docs.py`"
    )


def test_every_task_parameter_appears_in_the_readme() -> None:
    from charbench.agentic_email import agentic_email
    from charbench.chat_persona import chat_persona

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for fn in (chat_persona, agentic_email):
        for name in inspect.signature(fn).parameters:
            assert f"| `{name}` |" in readme, f"{fn.__name__}: -T {name} missing from README"


def test_google_args_parser_and_mismatch_errors() -> None:
    gen = _script()

    def documented(a: int = 1, b: str = "x") -> None:
        """Summary.

        Args:
            a: First line
                continues here.
            b: Second (default ``"x"``).

        Returns:
            Nothing.
        """

    table = gen.task_table(documented)
    assert "| `a` | `1` | First line continues here. |" in table
    assert '| `b` | `\'x\'` | Second (default `"x"`). |' in table

    def undocumented(a: int = 1, c: int = 2) -> None:
        """Summary.

        Args:
            a: documented.
        """

    with pytest.raises(ValueError, match="undocumented: \\['c'\\]"):
        gen.task_table(undocumented)


def test_render_requires_the_markers() -> None:
    gen = _script()
    with pytest.raises(ValueError, match="BEGIN GENERATED: x"):
        gen.render("no markers here", {"x": "table"})
    text = "a\n<!-- BEGIN GENERATED: x -->\nold\n<!-- END GENERATED: x -->\nb"
    assert gen.render(text, {"x": "new"}) == (
        "a\n<!-- BEGIN GENERATED: x -->\nnew\n<!-- END GENERATED: x -->\nb"
    )
