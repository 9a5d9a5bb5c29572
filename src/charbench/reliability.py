"""Reliability policy shared by charbench's tasks (see ``docs/reliability.md``)."""

from __future__ import annotations

SAMPLE_ERROR_TOLERANCE: float = 0.05
"""Default ``fail_on_error`` of ``chat_persona`` and ``agentic_email``.

A sample whose solver, tool or scorer raises is recorded in the log with its error, the other
samples run on, and ``charbench report`` counts it per cell (``n_errors``) and leaves it out
of every statistic. The eval fails only when errored samples reach 5% of its samples (a
systematic fault, which should stop a GPU run early). Inspect's own default would fail the
whole eval at the first error. ``--fail-on-error`` overrides it (``false`` never fails, an
integer is a count); ``--retry-on-error N`` retries an errored sample up to N times; and
``inspect eval-retry LOG`` re-runs only the errored samples of a finished log.

Edge case: with fewer than 20 samples a single error already reaches 5%, so a small run
still fails on its first error (as with Inspect's default).
"""
