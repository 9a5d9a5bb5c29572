"""Test fixture in the layout of the study's rollout module (charbench's own text).

charbench reads these constants with ``ast`` and never executes this file.
"""

import json
import re

TOOL_CALL_RE = re.compile(r"```tool_call\s+(.*?)(\s*```|\Z)", re.S)
FINAL_RE = re.compile(r"```final\s+(.*?)(\s*```|\Z)", flags=re.S)
MAX_CONSECUTIVE_MALFORMED = 3

NO_FENCED_BLOCK_ERROR = (
    "Fixture: no usable block in that turn.\n"
    "Send a tool_call or a final block."
)


def simulate_tool(scenario, tool_name, args):
    if tool_name not in scenario:
        return json.dumps({"error": f"fixture has no tool {tool_name}"})
    return json.dumps({"error": f"fixture matched nothing for {args}"})
