import json

import pytest

from charbench.textsafe import REPLACEMENT, sanitize, sanitize_all


@pytest.mark.parametrize(
    ("raw", "expected", "n"),
    [
        ("lone \ud800 x", f"lone {REPLACEMENT} x", 1),
        ("nul\x00byte", f"nul{REPLACEMENT}byte", 1),
        ("\x1b[31mred\x7f", f"{REPLACEMENT}[31mred{REPLACEMENT}", 2),
        ("tab\tnl\ncr\r ok", "tab\tnl\ncr\r ok", 0),
        ("émoji 🎉 ü, 日本語", "émoji 🎉 ü, 日本語", 0),
        ("\ufffe\uffff", REPLACEMENT * 2, 2),
    ],
)
def test_sanitize_replaces_only_unsafe_characters(raw: str, expected: str, n: int) -> None:
    assert sanitize(raw) == (expected, n)


def test_sanitized_text_encodes_and_is_idempotent() -> None:
    raw = "a\ud800b\udfffc\x00d"
    safe, n = sanitize(raw)
    assert n == 3
    safe.encode("utf-8")  # a lone surrogate would raise here
    json.dumps(safe, ensure_ascii=False).encode("utf-8")
    assert sanitize(safe) == (safe, 0)


def test_sanitize_all_counts_every_string() -> None:
    assert sanitize_all(["ok", "x\x00", "\ud800\ud800"]) == (
        ["ok", f"x{REPLACEMENT}", REPLACEMENT * 2],
        3,
    )
