"""The import rules of docs/architecture.md that `lint-imports` (pyproject.toml) does not state.

- Leaf modules import no other charbench module: ``charbench.personas``,
  ``charbench.textsafe`` and ``charbench._inspect``.
- The package is lazy: importing ``charbench`` or the provider's tool-call protocol does not
  import a task; ``from charbench import chat_persona, agentic_email`` gives the tasks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
LEAVES = ["charbench.personas", "charbench.textsafe", "charbench._inspect", "charbench._batcher",
          "charbench._table", "charbench._device",
          "charbench.contracts"]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    sys.path.insert(0, str(SRC))
    try:
        return grimp.build_graph("charbench", cache_dir=None)
    finally:
        sys.path.remove(str(SRC))


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaf_modules_import_no_charbench_module(graph: grimp.ImportGraph, leaf: str) -> None:
    if leaf not in graph.modules:
        pytest.skip(f"{leaf} is not in this tree")
    imported = sorted(graph.find_modules_directly_imported_by(leaf))
    assert imported == [], f"{leaf} must be a leaf but imports {imported}"


def test_the_rules_hold_for_the_whole_graph(graph: grimp.ImportGraph) -> None:
    tasks = ["charbench.chat_persona", "charbench.agentic_email", "charbench.scoring",
             "charbench.report"]
    for other in tasks:
        chain = graph.find_shortest_chain("charbench.provider", other, as_packages=True)
        assert chain is None, f"charbench.provider reaches {other}: {' -> '.join(chain or ())}"
        chain = graph.find_shortest_chain(other, "charbench.provider", as_packages=True)
        assert chain is None, f"{other} reaches charbench.provider: {' -> '.join(chain or ())}"


def _imported_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, timeout=300).stdout
    return set(out.split())


def test_importing_the_package_or_the_protocol_imports_no_task() -> None:
    for statement in ["import charbench", "import charbench.toolcalls", "import charbench.provider"]:
        loaded = _imported_after(statement)
        tasks = sorted(m for m in loaded
                       if m.startswith(("charbench.chat_persona", "charbench.agentic_email")))
        assert tasks == [], f"`{statement}` imported the tasks: {tasks}"


def test_the_task_functions_are_still_attributes_of_the_package() -> None:
    code = ("import charbench.chat_persona.dataset, charbench.agentic_email.scenarios\n"
            "from charbench import agentic_email, chat_persona\n"
            "import charbench\n"
            "print(chat_persona.__module__, agentic_email.__module__,"
            " charbench.chat_persona is chat_persona)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, timeout=300).stdout.split()
    assert out == ["charbench.chat_persona.task", "charbench.agentic_email.task", "True"]
