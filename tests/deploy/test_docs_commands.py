"""Every `jingmin …` and `make …` command quoted in the docs exists, with the options it uses.

A runbook that names a command the CLI does not have fails the operator at the worst
moment. Quoted means inside `inline code` or a fenced code block of a Markdown file in
docs/, deploy/, examples/ or the README.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import typer
from deploy_support import ROOT

DOCS = sorted(
    path
    for path in {
        ROOT / "README.md",
        *(ROOT / "docs").rglob("*.md"),
        *(ROOT / "deploy").rglob("*.md"),
        *(ROOT / "examples").rglob("*.md"),
    }
    # The examples' installed npm packages are not our documents.
    if "node_modules" not in path.parts
)
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")
# The program name as a word of its own: not jingmin_intake, jingmin-intake or jingmin.io,
# nor the namespace or project in `kubectl -n jingmin exec`, `docker compose -p jingmin`.
COMMAND = re.compile(
    r"(?:^|(?<=[\s;&|(]))(?<!-n )(?<!-p )(?<!--namespace )(jingmin|make)\s+(?=[a-z-])"
)
SHELL_END = re.compile(r"\s(?:\||;|&&|\|\||>|2>|<)\s|[)#]")


def _quoted(text: str) -> list[str]:
    """Each line of code (fenced blocks joined across backslash continuations) and inline span."""
    snippets: list[str] = []
    for block in FENCE.findall(text):
        snippets += block.replace("\\\n", " ").splitlines()
    without_blocks = FENCE.sub("", text)
    snippets += INLINE.findall(without_blocks)
    return snippets


def _commands(snippet: str) -> list[tuple[str, list[str]]]:
    found = []
    for match in COMMAND.finditer(snippet):
        rest = SHELL_END.split(snippet[match.end() :], maxsplit=1)[0]
        try:
            words = shlex.split(rest, comments=False)
        except ValueError:
            words = rest.split()
        found.append((match.group(1), words))
    return found


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z][\w-]*):", text, re.MULTILINE))


def _cli() -> click.Group:
    from eventkit.cli import app

    group = typer.main.get_command(app)
    assert isinstance(group, click.Group)
    return group


def _quoted_commands() -> list[tuple[Path, str, list[str]]]:
    found = []
    for path in DOCS:
        for snippet in _quoted(path.read_text(encoding="utf-8")):
            for program, words in _commands(snippet):
                found.append((path, program, words))
    return found


def test_the_docs_quote_commands_at_all() -> None:
    programs = {program for _, program, _ in _quoted_commands()}
    assert programs == {"jingmin", "make"}


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_quoted_command_exists(path: Path) -> None:
    cli = _cli()
    targets = _make_targets()
    problems: list[str] = []
    for snippet in _quoted(path.read_text(encoding="utf-8")):
        for program, words in _commands(snippet):
            if not words:
                continue
            if program == "make":
                target = words[0]
                if "=" not in target and target not in targets:
                    problems.append(f"make {target}: no such Makefile target")
                continue
            name = words[0]
            if name.startswith("-"):
                continue  # `jingmin --help`
            command = cli.commands.get(name)
            if command is None:
                problems.append(f"jingmin {name}: no such command (have {sorted(cli.commands)})")
                continue
            options = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
            options.add("--help")
            for word in words[1:]:
                if word.startswith("--") and word.split("=", 1)[0] not in options:
                    problems.append(f"jingmin {name}: no option {word.split('=', 1)[0]}")
    assert not problems, f"{path.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_the_checker_catches_a_wrong_command() -> None:
    commands = _commands("docker compose run --rm toolbox jingmin replay --servce intake | tee x")
    assert commands == [("jingmin", ["replay", "--servce", "intake"])]
    assert _commands("uv run jingmin_intake.app") == []
    assert _commands("kubectl -n jingmin exec deploy/intake-relay -- jingmin tail t") == [
        ("jingmin", ["tail", "t"])
    ]
    assert _commands("make deploy-check PYTEST_FLAGS=-x") == [
        ("make", ["deploy-check", "PYTEST_FLAGS=-x"])
    ]
