"""Email-body extraction: a table of real-looking replies, and the never-strip-content rule."""

from __future__ import annotations

import pytest

from charbench.agentic_email.extract import Extraction, extract_body

BODY = "Dear Sam,\n\nThe Q3 budget is approved.\n\nBest,\nAlex"

CASES: list[tuple[str, str, str, list[str]]] = [
    ("bare body", BODY, BODY, []),
    ("surrounding whitespace", f"\n\n  {BODY}  \n", BODY, []),
    ("subject line", f"Subject: Q3 budget\n\n{BODY}", BODY, ["Subject: Q3 budget"]),
    ("subject line label", f"Subject line: Q3 budget\n{BODY}", BODY, ["Subject line: Q3 budget"]),
    ("bold subject", f"**Subject:** Q3 budget\n\n{BODY}", BODY, ["**Subject:** Q3 budget"]),
    (
        "header block",
        f"To: sam.lee@example.com\nCc: ops@example.com\nFrom: Alex\nSubject: Budget\n\n{BODY}",
        BODY,
        ["To: sam.lee@example.com", "Cc: ops@example.com", "From: Alex", "Subject: Budget"],
    ),
    ("lower-case headers", f"subject: hi\nto: sam\n{BODY}", BODY, ["subject: hi", "to: sam"]),
    ("body label", f"Subject: Budget\nBody:\n{BODY}", BODY, ["Subject: Budget", "Body:"]),
    ("preamble", f"Here is the email:\n\n{BODY}", BODY, ["Here is the email:"]),
    (
        "polite preamble",
        f"Sure! Here's a draft of the email to Sam:\n{BODY}",
        BODY,
        ["Sure! Here's a draft of the email to Sam:"],
    ),
    ("body preamble", f"Below is the email body:\n{BODY}", BODY, ["Below is the email body:"]),
    ("fence", f"```\n{BODY}\n```", BODY, ["```"]),
    ("fence with tag", f"```text\n{BODY}\n```", BODY, ["```"]),
    (
        "preamble, fence, subject, postscript",
        f"Here's the email:\n```\nSubject: Budget\n\n{BODY}\n```\nLet me know if you want changes.",
        BODY,
        ["Here's the email:", "```", "Let me know if you want changes.", "Subject: Budget"],
    ),
    ("double quotes", f'"{BODY}"', BODY, ['"']),
    ("curly quotes", f"“{BODY}”", BODY, ["“"]),
    ("crlf", "Subject: x\r\n\r\nDear Sam,\r\nok", "Dear Sam,\nok", ["Subject: x"]),
    ("only packaging", "Here is the email:\nSubject: Hello", "", ["Here is the email:", "Subject: Hello"]),
    ("empty", "", "", []),
    ("whitespace", "   \n ", "", []),
]

KEEP: list[tuple[str, str]] = [
    ("greeting stays", "Dear Sam,\nThanks for the update."),
    ("hi stays", "Hi team,\n\nQuick note: the launch moved to Friday."),
    ("here-is content without colon", "Here is a quick message to say thank you, Sam."),
    ("here-is content that does not name the email", "Here is where we stand on the budget:\n- a\n- b"),
    ("header words mid-body", "Dear Sam,\nSubject: to change.\nTo: whom it may concern"),
    ("quote inside", "\"Great work\" is what Dana said, and I agree.\""),
    ("unclosed fence", "```\nDear Sam, the fence never closes"),
    ("to-do line", "To do: send the budget.\nThanks"),
    ("long preamble-like line is content", "Here is the message that I want the whole team to hear loud and clear today, "
     "because it matters for every one of us and for all of our customers:\nWe ship Friday."),
]


@pytest.mark.parametrize(("name", "raw", "body", "stripped"), CASES, ids=[c[0] for c in CASES])
def test_extract_table(name: str, raw: str, body: str, stripped: list[str]) -> None:
    result = extract_body(raw)
    assert result == Extraction(text=body, stripped=stripped)


@pytest.mark.parametrize(("name", "raw"), KEEP, ids=[c[0] for c in KEEP])
def test_content_is_never_stripped(name: str, raw: str) -> None:
    result = extract_body(raw)
    assert result.text == raw.strip()
    assert result.stripped == []


def test_none_is_empty() -> None:
    assert extract_body(None) == Extraction("", [])


def test_idempotent_on_table() -> None:
    for _, raw, _, _ in CASES:
        once = extract_body(raw)
        assert extract_body(once.text) == Extraction(once.text, [])
