#!/usr/bin/env python3
"""Generate the README's ``-T`` and ``-M`` parameter tables from the code's docstrings.

Sources (single source of truth, so the README cannot drift from the code):

- task parameters (``-T``): the signature defaults and the Google-style ``Args:`` section
  of :func:`charbench.chat_persona.chat_persona` and
  :func:`charbench.agentic_email.agentic_email`;
- model arguments (``-M``) of ``hf-lora``: the bullet list of ``- ``name``: text`` items in
  the module docstring of :mod:`charbench.provider._api`.

Each table sits in README.md between ``<!-- BEGIN GENERATED: <name> -->`` and
``<!-- END GENERATED: <name> -->``. Usage::

    python scripts/gen_param_docs.py          # rewrite the tables in README.md
    python scripts/gen_param_docs.py --check  # exit 1 if README.md is out of date

tests/demo/test_readme_params.py runs the check.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"

_ARG_LINE = re.compile(r"^(?P<name>\*{0,2}\w+)(?: \([^)]*\))?: ?(?P<text>.*)$")
_BULLET = re.compile(r"^- ``(?P<name>\w+)``: ?(?P<text>.*)$")


def _google_args(doc: str) -> dict[str, str]:
    """The ``Args:`` entries of a Google-style docstring, each joined to one line."""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Args:")
    except StopIteration as e:
        raise ValueError("docstring has no 'Args:' section") from e
    indent: int | None = None
    args: dict[str, list[str]] = {}
    current: str | None = None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        width = len(line) - len(line.lstrip())
        if indent is None:
            indent = width
        if width < indent:
            break  # the next section (Returns:, Raises:)
        text = line.strip()
        match = _ARG_LINE.match(text) if width == indent else None
        if match:
            current = match["name"]
            args[current] = [match["text"]]
        elif current is not None:
            args[current].append(text)
    return {k: " ".join(v).strip() for k, v in args.items()}


def _rst_to_md(text: str) -> str:
    """RST inline literals to Markdown and pipes escaped for a table cell."""
    text = re.sub(r"``(.+?)``", r"`\1`", text)
    text = re.sub(r":(?:func|class|mod|meth|data|attr):`~?([^`]+)`", r"`\1`", text)
    return text.replace("|", "\\|")


def _default(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return "(required)"
    return f"`{value!r}`" if value is not None else "`None`"


def task_table(fn: Callable[..., Any]) -> str:
    """Markdown table of a task's parameters: name, default, description.

    Raises:
        ValueError: a parameter without a docstring entry, or an entry without a parameter.
    """
    doc = inspect.getdoc(fn) or ""
    described = _google_args(doc)
    params = inspect.signature(fn).parameters
    missing = [p for p in params if p not in described]
    extra = [d for d in described if d not in params]
    if missing or extra:
        raise ValueError(
            f"{fn.__name__}: docstring Args and signature disagree (undocumented: {missing}, "
            f"documented but absent: {extra})"
        )
    rows = ["| `-T` | default | meaning |", "|---|---|---|"]
    for name, param in params.items():
        rows.append(f"| `{name}` | {_default(param.default)} | {_rst_to_md(described[name])} |")
    return "\n".join(rows)


def model_args_table() -> str:
    """Markdown table of ``hf-lora``'s ``-M`` arguments from :mod:`charbench.provider._api`.

    Raises:
        ValueError: the docstring lists no arguments, or disagrees with ``KNOWN_ARGS``.
    """
    from charbench.provider import _api

    items: dict[str, list[str]] = {}
    current: str | None = None
    for raw in (_api.__doc__ or "").splitlines():
        line = raw.rstrip()
        match = _BULLET.match(line)
        if match:
            current = match["name"]
            items[current] = [match["text"]]
        elif current is not None and line.startswith("  ") and line.strip():
            items[current].append(line.strip())
        else:
            current = None
    known = list(_api.KNOWN_ARGS)
    if sorted(items) != sorted(known):
        raise ValueError(
            f"hf-lora module docstring lists {sorted(items)} but KNOWN_ARGS is {sorted(known)}"
        )
    rows = ["| `-M` | meaning |", "|---|---|"]
    for name in known:
        rows.append(f"| `{name}` | {_rst_to_md(' '.join(items[name]))} |")
    return "\n".join(rows)


def sections() -> dict[str, str]:
    """Every generated section, by marker name."""
    from charbench.agentic_email import agentic_email
    from charbench.chat_persona import chat_persona

    return {
        "chat_persona-params": task_table(chat_persona),
        "agentic_email-params": task_table(agentic_email),
        "hf-lora-args": model_args_table(),
    }


def render(readme: str, generated: dict[str, str]) -> str:
    """``readme`` with each marked section replaced by its generated text.

    Raises:
        ValueError: a section's markers are missing from ``readme``.
    """
    for name, body in generated.items():
        begin, end = f"<!-- BEGIN GENERATED: {name} -->", f"<!-- END GENERATED: {name} -->"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        if not pattern.search(readme):
            raise ValueError(f"README has no '{begin}' ... '{end}' markers")
        readme = pattern.sub(lambda _m, b=begin, e=end, t=body: f"{b}\n{t}\n{e}", readme)
    return readme


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with ``--check`` verify) the generated tables in README.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    parser.add_argument("--readme", type=Path, default=README, help="README path")
    args = parser.parse_args(argv)
    current = args.readme.read_text(encoding="utf-8")
    updated = render(current, sections())
    if args.check:
        if updated != current:
            print(
                f"{args.readme}: the -T/-M parameter tables are out of date with the docstrings; "
                "run `python scripts/gen_param_docs.py`",
                file=sys.stderr,
            )
            return 1
        return 0
    if updated != current:
        args.readme.write_text(updated, encoding="utf-8")
        print(f"updated {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
