"""The README and every docs/ page stay true to the CLI: each `fusion-sweep ...` line of a ```bash block parses with
the command's real parser (and, for run and train, builds its config), every page is linked from the README, and the
README fits on a screen or two."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from sweep.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200


def commands_in(text: str) -> list[str]:
    """Each `fusion-sweep ...` command line of the ```bash blocks (continuations joined, comments dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [line.split("  #")[0].strip() for line in lines if line.startswith("fusion-sweep ")]


def parse(command: str):
    """The argparse namespace of one command line; SystemExit (argparse's) or UsageError when it is wrong."""
    words = shlex.split(command)[1:]
    assert words and words[0] in COMMANDS, f"{command}: no such command (commands: {', '.join(COMMANDS)})"
    args = build_parser(words[0]).parse_args(words)
    if words[0] == "run":
        from sweep.commands.run import build_sweep

        build_sweep(args)
    elif words[0] == "train":
        from sweep.commands.train import config_from_args

        config_from_args(args)
    return args


CASES = [(page, command) for page in PAGES for command in commands_in(page.read_text())]


@pytest.mark.parametrize("page, command", CASES, ids=[f"{p.name}: {c}" for p, c in CASES])
def test_every_command_shown_parses(page, command):
    parse(command)


def test_the_parser_check_catches_a_wrong_flag_and_a_wrong_field():
    assert commands_in("```bash\nfusion-sweep run --seeds 2  # two\nmake run\n```\n") == ["fusion-sweep run --seeds 2"]
    with pytest.raises(SystemExit):
        parse("fusion-sweep run --no-such-flag")
    with pytest.raises(ValueError):
        parse("fusion-sweep run --set train.no_such_field=1")


def test_every_docs_page_is_linked_from_the_readme_and_the_readme_fits():
    readme = (ROOT / "README.md").read_text()
    assert [p.name for p in PAGES[1:] if f"(docs/{p.name})" not in readme] == []
    assert len(readme.splitlines()) <= README_MAX_LINES
