"""What a user reads names things for what they do: no project-history words (issue 17, item 16)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from latentspeed_core import cli
from latentspeed_core.datacollect.runner import STEPS
from latentspeed_core.plugins import load_registry

ROOT = Path(__file__).resolve().parent.parent
#: Words that point at documents this repository does not have.
FOREIGN = re.compile(r"\bseed's|\bthe seeds?\b|deployment plan|the plan's|binary compiled", re.IGNORECASE)


def all_help(parser: argparse.ArgumentParser) -> str:
    text = parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                text += all_help(sub)
    return text


def test_no_command_help_refers_to_the_seed():
    text = all_help(cli.build_parser(load_registry()))
    assert "--network-core" in text  # every command's help is in there
    assert not FOREIGN.findall(text), FOREIGN.findall(text)  # ("random seed" is fine)


def test_first_collect_step_says_what_it_checks_and_keeps_its_id():
    name, description = STEPS[0]
    assert name == "binary_installed"  # the manifest's stable id
    assert "latentspeed --version" in description and "compiled" not in description.lower()


def test_data_collection_doc_cites_nothing_missing():
    text = (ROOT / "docs" / "data-collection.md").read_text()
    assert not FOREIGN.findall(text), FOREIGN.findall(text)
