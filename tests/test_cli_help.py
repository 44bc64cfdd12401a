"""Every openwit command explains itself (issue 12): `--version`, and a sentence with its default
for every flag, in the user's words — no "(default: None)", no internals."""
import argparse
import ast
import importlib
import re
from pathlib import Path

import pytest

from openwit.common.version import openwit_version

ROOT = Path(__file__).resolve().parents[1]
PARSERS = {  # console script → (module, its parser factory)
    "openwit-queries": ("openwit.queries.cli", "build_parser"),
    "openwit-build": ("openwit.pipeline.cli", "build_parser"),
    "openwit-stats": ("openwit.pipeline.stats.cli", "build_parser"),
    "openwit-loader": ("openwit.loader.cli", "build_parser"),
    "openwit-train": ("openwit.trainer.cli", "build_parser"),
    "openwit-eval": ("openwit.trainer.eval_cli", "build_parser"),
}
INTERNALS = ("(default: None)", "(default: [])", "(default: False)", "(default: --", "default: --",
             "when available", "add_shard_stage", "openwit.pipeline.", "FetchShards", "ua:`-scoped", "ua:-scoped")


def _console_scripts() -> set[str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "CONSOLE_SCRIPTS":
            return set(ast.literal_eval(node.value))
    raise AssertionError("no CONSOLE_SCRIPTS in setup.py")


def _parser(name: str) -> argparse.ArgumentParser:
    module, factory = PARSERS[name]
    return getattr(importlib.import_module(module), factory)()


def _all_parsers(name: str, parser: argparse.ArgumentParser):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action.choices.items():
                yield from _all_parsers(f"{name} {sub}", p)


def _problems(name: str, parser: argparse.ArgumentParser) -> list[str]:
    problems = []
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
            continue
        flag = f"{name} {'/'.join(action.option_strings) or action.dest}"
        if not action.help or action.help == argparse.SUPPRESS:
            problems.append(f"{flag}: no help text")
            continue
        text = formatter._expand_help(action)
        words = re.sub(r"\(default[^)]*\)", "", text)
        if len(re.findall(r"[A-Za-z]{2,}", words)) < 2:
            problems.append(f"{flag}: help is not a sentence: {text!r}")
        problems += [f"{flag}: {bad!r} in {text!r}" for bad in INTERNALS if bad in text]
        default = action.default
        stated = default in (None, False, [], argparse.SUPPRESS) or action.required or not action.option_strings
        if not stated and "default" not in text:
            problems.append(f"{flag}: default {default!r} not in {text!r}")
    for text in (parser.description or "", parser.epilog or ""):
        problems += [f"{name} description: {bad!r}" for bad in INTERNALS if bad in text]
    return problems


def test_every_console_script_is_checked():
    assert set(PARSERS) == _console_scripts()


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_flag_has_a_sentence_and_its_default(name):
    problems = [p for sub, parser in _all_parsers(name, _parser(name)) for p in _problems(sub, parser)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_version(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser(name).parse_args(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{name} {openwit_version()} (Python ") and openwit_version() != "unknown"


def test_help_wording_matches_the_readme():
    """The README's names for the same things: T:-scoped X-Robots-Tag directives."""
    readme = (ROOT / "README.md").read_text()
    build_help = _parser("openwit-build").format_help()
    assert "`T:`-scoped" in readme and "`T:`-scoped" in build_help
    assert "(default: None)" not in _parser("openwit-queries").format_help()
