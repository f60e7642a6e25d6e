"""The README stays true: its commands, settings and subcommands match the code and CI."""

import re
from pathlib import Path

import pytest

from gpubot.cli import build_parser
from gpubot.slack.messages import USAGES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _quick_start_commands():
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quick_start_has_a_run_and_a_test_command():
    run, test = _quick_start_commands()
    assert "gpubot" in run
    assert "pytest" in test


def test_ci_runs_the_readmes_test_command():
    _, test = _quick_start_commands()
    assert test in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("name", sorted(USAGES))
def test_every_slash_subcommand_is_in_the_readme(name):
    assert f"/gpu {name}" in README


def _cli_commands(parser, prefix=""):
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for name, sub in action.choices.items():
            yield f"{prefix}{name}", sub
            yield from _cli_commands(sub, f"{prefix}{name} ")


@pytest.mark.parametrize(("name", "sub"), list(_cli_commands(build_parser())))
def test_every_cli_subcommand_has_help_and_a_readme_mention(name, sub):
    assert sub.description, f"gpubot {name} has no description"
    assert f"gpubot {name}" in README


def test_every_setting_the_code_reads_is_documented():
    source = (ROOT / "src" / "gpubot" / "settings.py").read_text()
    for variable in set(re.findall(r'"((?:GPUBOT|SLACK)_[A-Z_]+)"', source)):
        assert f"`{variable}`" in README, variable
