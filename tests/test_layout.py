"""The source tree shows the architecture: few loose modules, none too long, imports that follow the layers."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "gpubot"
LOOSE = {"__init__.py", "__main__.py", "cli.py", "settings.py", "logs.py", "system_clock.py"}
MAX_LINES = 450


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        yield pytest.param(path, id=str(path.relative_to(SRC)))


def test_only_the_shared_modules_sit_beside_the_packages():
    assert {path.name for path in SRC.glob("*.py")} == LOOSE


@pytest.mark.parametrize("path", list(_modules()))
def test_no_module_is_too_long_to_read(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_the_imports_follow_the_layers():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    command = str(lint_imports) if lint_imports.exists() else shutil.which("lint-imports")
    assert command, "import-linter is in the test extras"
    result = subprocess.run([command], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
