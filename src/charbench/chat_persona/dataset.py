"""Prompts of the ``chat_persona`` task: Pure-Dove, local prompt files, and the builtin set.

Three prompt sources:

- Pure-Dove (default): ``LDJnr/Pure-Dove`` at the pinned revision :data:`PURE_DOVE_REVISION`,
  downloaded with :func:`huggingface_hub.hf_hub_download` so that an offline Hugging Face
  cache (``HF_HUB_OFFLINE=1``) works. The prompt is ``row["conversation"][0]["input"]``.
- A local file (``-T prompts=PATH``): JSON (a list of rows) or JSONL (one row per line),
  either Pure-Dove rows (with ``conversation``) or plain ``{"prompt": "..."}`` rows.
- ``prompts="builtin"``: a few dozen everyday prompts written for charbench
  (``data/everyday_prompts.jsonl``), for offline demos and tests.

Selections (:func:`select_rows`) pick the rows to use:

- ``dct``: the study behind the published numbers: ``idx = list(range(len(rows)))``,
  ``random.Random(0).shuffle(idx)``, keep the first ``n`` rows whose first input is
  non-empty. (DCT's own script skipped rows with an empty ``conversation`` list; a row whose
  first input is the empty string is also skipped here. The two agree on every row that has
  a non-empty first input.)
- ``oct``: the first ``n`` rows with a non-empty prompt, in file order (OCT used the first
  500 rows of Pure-Dove).
- ``heldout`` (default): rows the released classifiers never saw: the rows from
  :data:`HELDOUT_START` (500) on, shuffled with ``random.Random(HELDOUT_SEED)`` (a fixed,
  documented seed, 0), first ``n`` non-empty ones; a shuffle so that ``n`` prompts are a
  sample of the held-out rows, not one contiguous block of the file. For sources that are
  not Pure-Dove (plain prompt files, builtin) every row is held out and ``heldout`` equals
  ``oct`` (file order; the file's author chose the rows).

Text entering the eval is made safe on load (:func:`charbench.textsafe.sanitize`: lone
surrogates, NUL and other control characters become U+FFFD); each row's count of replaced
characters is kept (:attr:`PromptRow.sanitized`, the samples' ``sanitized`` metadata). A
plain ``{"prompt": ...}`` row that is empty or whitespace only is an error naming the row; a
Pure-Dove row whose first input is empty or whitespace only is skipped by every selection.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

from charbench.textsafe import sanitize

Selection = Literal["dct", "oct", "heldout"]
SELECTIONS: tuple[str, ...] = get_args(Selection)
"""Valid values of the task's ``selection`` argument."""

PURE_DOVE_REPO = "LDJnr/Pure-Dove"
"""Hugging Face dataset repo of Pure-Dove."""
PURE_DOVE_FILENAME = "Pure-Dove.jsonl"
"""The data file in :data:`PURE_DOVE_REPO` (one JSON row per line, the ``train`` split)."""
PURE_DOVE_REVISION = "c71c3cadc93feee3d22f74d52578896a60887579"
"""Pinned commit of :data:`PURE_DOVE_REPO` ("Create README.md", the commit after the upload of
``Pure-Dove.jsonl``). Pinning makes row indices, and therefore every selection, stable."""

HELDOUT_START = 500
"""First Pure-Dove row of the ``heldout`` selection: the released classifiers were trained on
responses to rows 0-499."""

DCT_SEED = 0
"""Seed of ``random.Random`` in the ``dct`` selection."""

HELDOUT_SEED = 0
"""Seed of ``random.Random`` that shuffles the held-out Pure-Dove rows (``heldout``)."""

BUILTIN = "builtin"
"""Value of ``prompts`` that selects the everyday prompts shipped with charbench."""


class PromptsUnavailableError(RuntimeError):
    """Pure-Dove could not be fetched from the Hub or found in the local HF cache."""


@dataclass(frozen=True)
class PromptSource:
    """Prompt texts of one source, indexed by row.

    Attributes:
        name: ``"pure-dove"``, ``"builtin"``, or the path of a local file as given.
        texts: The prompt of every row (``""`` for a row with no first input), in file order.
        pure_dove: True when the rows are Pure-Dove rows (the hub dataset, or a local file of
            rows with ``conversation``); then ``heldout`` starts at row 500.
        id_prefix: Prefix of prompt ids: ``dove`` for Pure-Dove rows, ``builtin`` for the
            builtin set, ``prompt`` for a plain local file.
        sanitized: characters replaced in each row's text on load (see
            :func:`charbench.textsafe.sanitize`); empty when none were.
    """

    name: str
    texts: tuple[str, ...]
    pure_dove: bool
    id_prefix: str
    sanitized: tuple[int, ...] = ()

    def replaced(self, row: int) -> int:
        """Characters of ``row`` replaced on load (0 when none)."""
        return self.sanitized[row] if row < len(self.sanitized) else 0

    def prompt_id(self, row: int) -> str:
        """Stable id of ``row``: ``dove-00042``, ``builtin-00007``, ``prompt-00003``."""
        return f"{self.id_prefix}-{row:05d}"


@dataclass(frozen=True)
class PromptRow:
    """One selected prompt."""

    row: int
    """Row index in the source file (Pure-Dove row index for Pure-Dove)."""
    prompt: str
    """The prompt text."""
    prompt_id: str
    """Stable id (see :meth:`PromptSource.prompt_id`); the bootstrap cluster of its samples."""
    sanitized: int = 0
    """Characters of the prompt replaced on load (``metadata["sanitized"]`` of its samples)."""


def _row_text(row: Any, where: str) -> tuple[str, bool]:
    """Prompt text of one row and whether it is a Pure-Dove row.

    Raises:
        ValueError: the row is neither a Pure-Dove row nor a ``{"prompt": ...}`` row.
    """
    if not isinstance(row, dict):
        raise ValueError(
            f"{where}: expected a JSON object (a Pure-Dove row with 'conversation' or a "
            f'{{"prompt": "..."}} row), got {type(row).__name__}'
        )
    if "conversation" in row:
        conv = row["conversation"]
        if conv is None or conv == []:
            return "", True
        if not isinstance(conv, list):
            raise ValueError(f"{where}: 'conversation' must be a list of turns")
        first = conv[0]
        if not isinstance(first, dict) or not isinstance(first.get("input", ""), str):
            raise ValueError(
                f"{where}: the first turn of 'conversation' must be an object with a string "
                "'input'"
            )
        text = str(first.get("input") or "")
        return (text if text.strip() else ""), True
    if "prompt" in row:
        prompt = row["prompt"]
        if not isinstance(prompt, str):
            raise ValueError(f"{where}: 'prompt' must be a string, got {type(prompt).__name__}")
        if not prompt.strip():
            raise ValueError(
                f"{where}: the prompt is empty or whitespace only; remove the row or give it "
                "a prompt"
            )
        return prompt, False
    raise ValueError(
        f"{where}: a row needs 'conversation' (Pure-Dove) or 'prompt'; it has keys "
        f"{sorted(row)}"
    )


def parse_prompt_rows(text: str, name: str) -> tuple[list[str], bool]:
    """Parse the text of a prompts file.

    Args:
        text: A JSON array of rows, or JSONL with one row per line (blank lines ignored).
        name: The file name, used in error messages.

    Returns:
        The prompt of every row and whether the rows are Pure-Dove rows.

    Raises:
        ValueError: invalid JSON (with the line number for JSONL), no rows, a malformed row,
            or a mix of Pure-Dove and plain rows.
    """
    rows: list[Any]
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = None
        rows = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"prompts file {name}: line {lineno} is not valid JSON ({e.msg}); expected "
                    "a JSON array of rows or JSONL with one row per line"
                ) from e
    else:
        if isinstance(parsed, list):
            rows = parsed
        elif isinstance(parsed, dict):
            rows = [parsed]  # JSONL with a single row
        else:
            raise ValueError(
                f"prompts file {name}: expected a JSON array of rows or JSONL, got a JSON "
                f"{type(parsed).__name__}"
            )
    if not rows:
        raise ValueError(f"prompts file {name} has no rows")
    texts: list[str] = []
    kinds: set[bool] = set()
    for i, row in enumerate(rows):
        prompt, is_dove = _row_text(row, f"prompts file {name}, row {i}")
        texts.append(prompt)
        kinds.add(is_dove)
    if len(kinds) > 1:
        raise ValueError(
            f"prompts file {name} mixes Pure-Dove rows ('conversation') and plain "
            "('prompt') rows; use one shape throughout"
        )
    return texts, kinds.pop()


def make_source(name: str, texts: list[str], pure_dove: bool, id_prefix: str) -> PromptSource:
    """A :class:`PromptSource` of ``texts``, each made safe (:func:`charbench.textsafe.sanitize`)."""
    safe: list[str] = []
    counts: list[int] = []
    for text in texts:
        clean, n = sanitize(text)
        safe.append(clean)
        counts.append(n)
    return PromptSource(
        name=name, texts=tuple(safe), pure_dove=pure_dove, id_prefix=id_prefix,
        sanitized=tuple(counts) if any(counts) else (),
    )


def read_prompts_file(path: str | Path) -> PromptSource:
    """Load a local prompts file (JSON or JSONL; see :func:`parse_prompt_rows`).

    Raises:
        ValueError: the file does not exist, cannot be read or decoded, or is malformed.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(
            f"prompts file {str(path)!r} not found (resolved to {p.resolve()}); pass "
            f"-T prompts=PATH to a JSON/JSONL file, -T prompts={BUILTIN}, or omit it for "
            "Pure-Dove"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read prompts file {str(path)!r}: {e}") from e
    texts, is_dove = parse_prompt_rows(text, str(path))
    return make_source(str(path), texts, is_dove, "dove" if is_dove else "prompt")


def builtin_prompts() -> PromptSource:
    """The everyday prompts shipped with charbench (written for this project)."""
    data = resources.files("charbench.chat_persona").joinpath("data/everyday_prompts.jsonl")
    texts, is_dove = parse_prompt_rows(data.read_text(encoding="utf-8"), BUILTIN)
    assert not is_dove
    return make_source(BUILTIN, texts, False, BUILTIN)


def load_pure_dove(revision: str = PURE_DOVE_REVISION, cache_dir: str | None = None) -> PromptSource:
    """Pure-Dove's ``train`` split through the Hugging Face cache.

    Args:
        revision: Commit of :data:`PURE_DOVE_REPO` (default :data:`PURE_DOVE_REVISION`).
        cache_dir: HF cache directory (default: huggingface_hub's, i.e. ``HF_HUB_CACHE``).

    Raises:
        PromptsUnavailableError: the file is neither reachable on the Hub nor in the cache;
            the message says how to run offline.
        ValueError: the downloaded file is malformed.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        path = hf_hub_download(
            PURE_DOVE_REPO, PURE_DOVE_FILENAME, repo_type="dataset", revision=revision,
            cache_dir=cache_dir,
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as e:
        raise PromptsUnavailableError(
            f"could not load {PURE_DOVE_FILENAME} of dataset {PURE_DOVE_REPO} at revision "
            f"{revision} from the Hugging Face Hub or the local cache ({type(e).__name__}: "
            f"{e}). Without Hub access, pass -T prompts=PATH with a local JSON/JSONL copy of "
            f"Pure-Dove (or plain {{\"prompt\": ...}} rows), -T prompts={BUILTIN} for the "
            "bundled everyday prompts, or set HF_HUB_OFFLINE=1 with a cache that holds the "
            "file (e.g. `hf download LDJnr/Pure-Dove --repo-type dataset --revision "
            f"{revision}` on a machine with access, then copy the cache)."
        ) from e
    texts, is_dove = parse_prompt_rows(Path(path).read_text(encoding="utf-8"), PURE_DOVE_REPO)
    if not is_dove:
        raise ValueError(f"{PURE_DOVE_REPO}/{PURE_DOVE_FILENAME} does not hold Pure-Dove rows")
    return make_source("pure-dove", texts, True, "dove")


def load_prompt_source(prompts: str | None) -> PromptSource:
    """Resolve the task's ``prompts`` argument.

    Args:
        prompts: ``None`` for Pure-Dove from the Hub/cache, ``"builtin"`` for the bundled
            everyday prompts, else a path to a JSON/JSONL prompts file.

    Raises:
        ValueError: a bad prompts file (see :func:`read_prompts_file`).
        PromptsUnavailableError: Pure-Dove requested but unavailable.
    """
    if prompts is None:
        return load_pure_dove()
    if not isinstance(prompts, str) or not prompts.strip():
        raise ValueError(
            f"prompts must be a path to a JSON/JSONL file or {BUILTIN!r}; got {prompts!r}"
        )
    if prompts.strip().lower() == BUILTIN:
        return builtin_prompts()
    return read_prompts_file(prompts)


def validate_selection(selection: str) -> Selection:
    """Check a selection name.

    Raises:
        ValueError: not one of :data:`SELECTIONS`.
    """
    key = str(selection).strip().lower()
    if key not in SELECTIONS:
        raise ValueError(
            f"unknown selection {selection!r}; valid selections are {', '.join(SELECTIONS)}"
        )
    return key  # type: ignore[return-value]


def _order(source: PromptSource, sel: Selection) -> tuple[list[int], str]:
    """Row indices in selection order, and what they are (for the error message)."""
    rows = list(range(len(source.texts)))
    if sel == "dct":
        random.Random(DCT_SEED).shuffle(rows)
    elif sel == "heldout" and source.pure_dove:
        rows = rows[HELDOUT_START:]
        random.Random(HELDOUT_SEED).shuffle(rows)
        return rows, f"non-empty rows from row {HELDOUT_START} on (held out from the classifier's training)"
    return rows, "non-empty rows"


def _too_few(source: PromptSource, sel: Selection, n: int, found: int, what: str) -> ValueError:
    if sel == "heldout" and source.pure_dove and found == 0:
        return ValueError(
            f"selection 'heldout' uses the Pure-Dove rows from row {HELDOUT_START} on (the "
            f"released classifiers saw rows 0-{HELDOUT_START - 1}), but {source.name} has "
            f"{len(source.texts)} rows: use -T selection=dct or -T selection=oct, or a prompts "
            f"file with more than {HELDOUT_START} rows"
        )
    if found == 0:
        return ValueError(f"{source.name} has no {what} for selection {sel!r}")
    advice = f"use -T n={found} or fewer, or another prompts source"
    if sel == "heldout" and source.pure_dove:
        advice += " (or -T selection=dct or oct, which also use rows 0-499)"
    return ValueError(
        f"n={n} is larger than the prompts available: {source.name} has {found} {what} for "
        f"selection {sel!r}; {advice}"
    )


def select_rows(source: PromptSource, selection: str, n: int) -> list[PromptRow]:
    """Pick ``n`` prompts of ``source`` by ``selection`` (rules in the module docstring).

    Args:
        source: The prompt source.
        selection: ``dct``, ``oct`` or ``heldout``.
        n: Number of prompts, at least 1.

    Returns:
        The selected rows, in selection order (shuffled order for ``dct`` and for
        ``heldout`` of Pure-Dove rows).

    Raises:
        ValueError: an unknown selection, ``n < 1``, or fewer than ``n`` usable rows (the
            message says how many there are and what to do instead).
    """
    sel = validate_selection(selection)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    order, what = _order(source, sel)
    chosen: list[PromptRow] = []
    for i in order:
        text = source.texts[i]
        if text:
            chosen.append(PromptRow(i, text, source.prompt_id(i), source.replaced(i)))
            if len(chosen) == n:
                return chosen
    raise _too_few(source, sel, n, len(chosen), what)
