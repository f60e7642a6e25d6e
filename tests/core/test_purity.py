"""The core knows nothing of Slack, SQL, NVML or the scheduler, and never reads the clock or environment."""

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "src" / "gpubot" / "core"
FOREIGN = ("slack_bolt", "slack_sdk", "sqlalchemy", "alembic", "pynvml", "apscheduler", "aiohttp")


def test_importing_the_core_loads_no_foreign_library():
    code = (
        "import sys, gpubot.core.service, gpubot.core.commands, gpubot.core.outbox, gpubot.core.load,"
        " gpubot.core.streak;"
        f"print([m for m in {FOREIGN!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_core_never_reads_the_wall_clock_or_the_environment():
    for path in CORE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("now", "utcnow", "today", "environ", "getenv") or _is_clock_port(node), (
                    f"{path.name}:{node.lineno} reads {node.attr}"
                )


def _is_clock_port(node):
    # `self._clock.now()` is the injected Clock, which is the point.
    return isinstance(node.value, ast.Attribute) and node.value.attr == "_clock"
