"""Persona sets (the built-in OCT set or a file of your own) and the released artifacts.

Everything here is data plus small pure helpers: no torch, no network, no other charbench
module (a leaf). A persona set is a :class:`PersonaSet` read from YAML or JSON by
:func:`load_persona_set`; the built-in set of Open Character Training is read the same way
from ``data/personas/oct.yaml``, and :data:`PERSONAS`, :data:`DEFAULT_PERSONAS`,
:data:`DISPLAY_NAMES` and :data:`PERSONA_DESCRIPTIONS` are derived from it. The order of
:data:`PERSONAS` is the label order of the released ModernBERT classifiers (ids 0-10), but
code that reads a classifier must still take the order from its ``id2label``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PERSONA_SET_SUFFIXES: tuple[str, ...] = (".yaml", ".yml", ".json")
"""File suffixes of a persona set file (``-T personas=FILE``)."""

BUILTIN_SET = "oct"
"""Name of the built-in persona set (``data/personas/oct.yaml`` in the package)."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_BUILTIN_DIR = Path(__file__).parent / "data" / "personas"


class PersonaSetError(ValueError):
    """A persona set file that cannot be read or is invalid (the message names the file)."""


class Persona(BaseModel):
    """One persona of a set.

    Attributes:
        name: Identifier used in sample ids, labels and adapter templates: lower-case ASCII
            letters, digits and ``_``, starting with a letter (``sarcasm``, ``pirate_2``).
        description: Second-person description, the system prompt of the prompted
            condition and the class description of the zero-shot classifier. Not blank.
        display_name: Human-readable name for tables and figures (default: ``name``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    display_name: str | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"persona name {value!r} is not a valid identifier: use lower-case letters, "
                "digits and '_', starting with a letter (e.g. 'pirate' or 'dry_wit')"
            )
        return value

    @field_validator("description")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the description is empty; write one or two sentences")
        return value.strip()

    @property
    def label(self) -> str:
        """Display name, or the name when none is given."""
        return self.display_name or self.name


class PersonaSet(BaseModel):
    """A persona set: the personas in classifier label order, as read from a file.

    Attributes:
        name: Name of the set (recorded in eval metadata and reports).
        personas: The personas, in the label order of the set's classifier. Unique names.
        evaluate: Default selection when ``-T personas=FILE`` names no personas (default:
            all of them). Names must be in ``personas``.
        classifier: The set's trained classifier (Hub id or local directory, e.g. the
            output of ``charbench train-classifier``), used when ``-T classifier`` is not
            given. A relative path is taken relative to the file. Default None.
        source: Where the set was read from (not part of the content hash).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    personas: tuple[Persona, ...] = Field(min_length=1)
    evaluate: tuple[str, ...] | None = None
    classifier: str | None = None
    source: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> PersonaSet:
        counts = Counter(p.name for p in self.personas)
        dup = sorted(n for n, c in counts.items() if c > 1)
        if dup:
            raise ValueError(f"duplicate persona name(s): {', '.join(dup)}")
        unknown = [n for n in self.evaluate or () if n not in counts]
        if unknown:
            raise ValueError(
                f"evaluate lists persona(s) not in the set: {', '.join(unknown)}"
            )
        if self.evaluate is not None and not self.evaluate:
            raise ValueError("evaluate is empty; omit it to evaluate every persona")
        if self.classifier is not None and not self.classifier.strip():
            raise ValueError("classifier is blank; omit it or name a checkpoint")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        """Persona names in label order."""
        return tuple(p.name for p in self.personas)

    @property
    def descriptions(self) -> dict[str, str]:
        """Persona name -> description."""
        return {p.name: p.description for p in self.personas}

    @property
    def display_names(self) -> dict[str, str]:
        """Persona name -> display name (the name when none is given)."""
        return {p.name: p.label for p in self.personas}

    @property
    def default_selection(self) -> tuple[str, ...]:
        """The personas evaluated when no selection is given, in label order."""
        chosen = set(self.evaluate or self.names)
        return tuple(n for n in self.names if n in chosen)

    @property
    def content_hash(self) -> str:
        """``sha256:<first 16 hex digits>`` of the set's canonical JSON (source excluded).

        Two files with the same personas, descriptions, display names, default selection
        and classifier have the same hash, whatever their format or comments.
        """
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=True)
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def ref(self) -> dict[str, str]:
        """``{"name", "hash"}``: what eval metadata records as ``persona_set``."""
        return {"name": self.name, "hash": self.content_hash}

    def select(self, spec: str | Sequence[str] | None) -> list[str]:
        """Validate a persona selection from this set and return it in label order.

        Args:
            spec: None, ``""`` or ``"default"`` for :attr:`default_selection`; ``"all"``
                for every persona; a comma-separated string or a list of names (each item
                may itself be ``all`` or ``default``).

        Raises:
            ValueError: an unknown name (the message lists the set's personas).
        """
        if spec is None:
            return list(self.default_selection)
        items = spec.split(",") if isinstance(spec, str) else [str(s) for s in spec]
        names: list[str] = []
        for item in (s.strip().lower() for s in items):
            if item == "all":
                names.extend(self.names)
            elif item == "default":
                names.extend(self.default_selection)
            elif item:
                names.append(item)
        if isinstance(spec, str) and not names and spec.strip().lower() in ("", "default"):
            return list(self.default_selection)
        unknown = [n for n in names if n not in self.names]
        if unknown:
            default = (
                f"the {len(self.default_selection)} of its default selection"
                if self.evaluate
                else "all of them"
            )
            raise ValueError(
                f"unknown persona(s) {', '.join(map(repr, unknown))}; valid personas are "
                f"{', '.join(self.names)} (persona set {self.name!r}; or 'all', or 'default' "
                f"for {default})"
            )
        if not names:
            raise ValueError("the persona selection is empty")
        chosen = set(names)
        return [p for p in self.names if p in chosen]


def is_persona_set_file(value: object) -> bool:
    """Whether a ``-T personas`` item names a persona set file rather than a persona.

    True for a string ending in ``.yaml``, ``.yml`` or ``.json`` (any case) or containing a
    path separator.
    """
    if not isinstance(value, str):
        return False
    text = value.strip()
    return text.lower().endswith(PERSONA_SET_SUFFIXES) or "/" in text or os.sep in text


def load_persona_set(spec: str | Path | None = None) -> PersonaSet:
    """Read a persona set: the built-in OCT set, or a YAML/JSON file.

    Args:
        spec: None or ``"oct"`` for the built-in set (``data/personas/oct.yaml`` in the
            package); otherwise the path of a ``.yaml``/``.yml``/``.json`` file with
            ``name``, ``personas`` (each ``name``, ``description``, optional
            ``display_name``), optional ``evaluate`` and ``classifier``.

    Returns:
        The validated set; a relative ``classifier`` path that exists beside the file is
        made absolute.

    Raises:
        PersonaSetError: no such file, an unreadable or malformed file, or an invalid set
            (duplicate or invalid names, empty descriptions, unknown keys); the message
            names the file and the offending entry (``personas.2.description``).
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == BUILTIN_SET):
        path = _BUILTIN_DIR / f"{BUILTIN_SET}.yaml"
    else:
        path = Path(str(spec).strip()).expanduser()
    where = f"persona set file {str(path)!r}"
    if not path.is_file():
        raise PersonaSetError(
            f"{where} does not exist; pass -T personas=FILE with a .yaml or .json persona "
            "set (see README, 'Your own personas'), or persona names of the built-in set"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise PersonaSetError(f"{where} cannot be read as YAML or JSON: {e}") from e
    if not isinstance(data, dict):
        raise PersonaSetError(
            f"{where} must hold a mapping with 'name' and 'personas', got {type(data).__name__}"
        )
    data.setdefault("name", path.stem)
    try:
        found = PersonaSet.model_validate({**data, "source": str(path)})
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or '(file)'}: {err['msg']}"
            for err in e.errors()
        )
        raise PersonaSetError(f"{where} is not a valid persona set: {problems}") from e
    clf = found.classifier
    if clf is not None and not Path(clf).is_absolute() and (path.parent / clf).exists():
        found = found.model_copy(update={"classifier": str((path.parent / clf).resolve())})
    return found


def resolve_personas(spec: str | Sequence[str] | None) -> tuple[PersonaSet, list[str]]:
    """The persona set and the evaluated personas of a ``-T personas`` value.

    Args:
        spec: None/``"default"``/``"all"``/names (a string or list) select from the built-in
            OCT set; a persona set file (see :func:`is_persona_set_file`) as the value or as
            the first item of a list selects from that file: ``personas=my_set.yaml`` (its
            default selection) or ``personas=my_set.yaml,pirate,poet`` (Inspect turns the
            comma-separated value into a list).

    Raises:
        PersonaSetError: the file cannot be read or is invalid.
        ValueError: an unknown persona or an empty selection; a file after the first item.
    """
    items: list[str] | None
    if spec is None:
        items = None
    elif isinstance(spec, str):
        items = [s for s in spec.split(",") if s.strip()]
    else:
        items = [str(s) for s in spec]
    if items and is_persona_set_file(items[0]):
        persona_set = load_persona_set(items[0])
        rest = items[1:]
    else:
        persona_set = builtin_set()
        rest = list(items or [])
    late = [s for s in rest if is_persona_set_file(s)]
    if late:
        raise ValueError(
            f"a persona set file must come first in -T personas (got {', '.join(late)} later)"
        )
    return persona_set, persona_set.select(rest if rest else None)


_BUILTIN: list[PersonaSet] = []


def builtin_set() -> PersonaSet:
    """The built-in OCT persona set (read once)."""
    if not _BUILTIN:
        _BUILTIN.append(load_persona_set(None))
    return _BUILTIN[0]


_OCT = builtin_set()

PERSONAS: tuple[str, ...] = _OCT.names
"""All 11 OCT personas, in the released classifiers' label order."""

DEFAULT_PERSONAS: tuple[str, ...] = _OCT.default_selection
"""The 10 personas evaluated by default (misalignment's adapters sit in gated repos)."""

DISPLAY_NAMES: dict[str, str] = _OCT.display_names
"""OCT persona -> display name (``Sarcastic``)."""

PERSONA_DESCRIPTIONS: dict[str, str] = _OCT.descriptions
"""OCT persona -> description written for charbench (``data/personas/oct.yaml``).

Used as the system prompt of the *prompted* condition (``-T persona_prompt=true``) and as
the class descriptions of the zero-shot classifier. They are this project's own wording,
not the constitutions OCT trained on.
"""

Stage = Literal["base", "distillation", "full", "introspection"]
STAGES: tuple[Stage, ...] = ("base", "distillation", "full", "introspection")
"""Training stages of the persona release.

- ``base``: the instruct model with no adapter.
- ``distillation``: the DPO-distilled adapter (``maius/{slug}-pt-distillation/{persona}``).
- ``full``: the released persona adapter after distillation *and* introspection
  (``maius/{slug}-personas/{persona}``); this is what the published tables call "full".
- ``introspection``: the OCT paper's own composition: the distillation adapter merged into
  the base with the introspection adapter (``maius/{slug}-pt-introspection/{persona}``)
  applied on top.
"""


@dataclass(frozen=True)
class ReleasedBase:
    """A base model for which the persona authors released adapters and a classifier."""

    slug: str
    """Short slug used in the released repo names, e.g. ``llama-3.1-8b-it``."""
    short: str
    """Short name used by ``charbench sweep --bases`` and in reports (``llama``)."""
    hub_id: str
    """Canonical Hugging Face id of the instruct base."""
    aliases: tuple[str, ...] = ()
    """Other ids that name the same checkpoint."""

    @property
    def classifier(self) -> str:
        """The released ModernBERT persona classifier for this base."""
        return f"maius/{self.slug}-pt-classifier"

    @property
    def names(self) -> tuple[str, ...]:
        return (self.hub_id, *self.aliases)

    def adapter_template(self, stage: Stage) -> str | None:
        """The adapter template (containing ``{persona}``) for ``stage``, or None for base.

        For ``introspection`` this is the *introspection* adapter; the provider composes it
        with :meth:`adapter_template` of ``distillation``.
        """
        if stage == "base":
            return None
        if stage == "distillation":
            return f"maius/{self.slug}-pt-distillation/{{persona}}"
        if stage == "full":
            return f"maius/{self.slug}-personas/{{persona}}"
        if stage == "introspection":
            return f"maius/{self.slug}-pt-introspection/{{persona}}"
        raise ValueError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")

    def adapter_for(self, stage: Stage, persona: str) -> str | None:
        """The concrete adapter for ``persona`` at ``stage`` (misalignment has its own repo)."""
        if stage == "base":
            return None
        if persona == "misalignment":
            if stage != "full":
                raise ValueError(
                    "the misalignment persona was released only as a full-stage adapter "
                    f"(maius/{self.slug}-misalignment); stage {stage!r} has none"
                )
            return f"maius/{self.slug}-misalignment"
        template = self.adapter_template(stage)
        assert template is not None
        return template.format(persona=persona)


RELEASED_BASES: tuple[ReleasedBase, ...] = (
    ReleasedBase(
        slug="llama-3.1-8b-it",
        short="llama",
        hub_id="meta-llama/Llama-3.1-8B-Instruct",
        aliases=("meta-llama/Meta-Llama-3.1-8B-Instruct",),
    ),
    ReleasedBase(slug="qwen-2.5-7b-it", short="qwen", hub_id="Qwen/Qwen2.5-7B-Instruct"),
    ReleasedBase(slug="gemma-3-4b-it", short="gemma", hub_id="google/gemma-3-4b-it"),
)


def released_base(name: str | None) -> ReleasedBase | None:
    """The released base that ``name`` refers to, or None.

    Accepts a Hub id (case-insensitive, either Llama spelling), a short name (``llama``), a
    slug (``llama-3.1-8b-it``), or a local path whose last component is the repo name
    (``/models/Qwen2.5-7B-Instruct``).
    """
    if not name:
        return None
    key = name.strip().rstrip("/").lower()
    for base in RELEASED_BASES:
        candidates = {n.lower() for n in base.names} | {base.short, base.slug}
        if key in candidates:
            return base
        tail = key.rsplit("/", 1)[-1]
        if tail in {n.lower().rsplit("/", 1)[-1] for n in base.names}:
            return base
    return None


def parse_personas(spec: str | Sequence[str] | None) -> list[str]:
    """Validate a selection of the built-in OCT personas and return it in label order.

    Args:
        spec: ``None`` or ``"default"`` for the 10 default personas, ``"all"`` for all 11,
            a comma-separated string, or a list of persona names. Inspect passes
            ``-T personas=a,b`` as a list already. For persona set files see
            :func:`resolve_personas`.

    Raises:
        ValueError: an unknown persona name (the message lists the valid ones) or an empty
            selection.
    """
    return builtin_set().select(spec)
