"""README.md and docs/ stay true to the repository a newcomer reads them with: every relative link
and anchor resolves, the README stays short with its two commands first, every option the pages
give a command exists, every TOML example parses and the whole jobs, profiles and settings among
them load, and every test docs/reliability.md names exists."""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from rollup.cli import main
from rollup.jobs.loader import load_job
from rollup.settings import load_settings
from rollup.sinks.profiles import load_sink_profile

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
README_LINE_BUDGET = 180
"""The README says what rollup is, its two commands, one job, the commands and links; the
reference lives in docs/. A newcomer read 612 lines before the first how-to."""

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")


def page_id(page: Path) -> str:
    return str(page.relative_to(REPO))


def prose(text: str) -> str:
    """The text without its fenced code blocks."""
    return FENCE.sub("", text)


def blocks(text: str) -> Iterator[tuple[str, str]]:
    """(language, content) of every fenced code block."""
    for found in FENCE.finditer(text):
        yield found.group(1), found.group(2)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in prose(page.read_text()).splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_relative_link_points_at_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no file {linked.relative_to(REPO)}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(REPO)}")
    assert broken == []


def test_the_readme_stays_short_and_opens_with_the_demo_and_the_tests() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= README_LINE_BUDGET
    language, first_block = next(blocks(text))
    assert language == "sh"
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands == ["scripts/demo.sh", "scripts/test.sh"]
    assert text.index("scripts/demo.sh") < len("\n".join(text.splitlines()[:25]))
    for script in ("scripts/demo.sh", "scripts/test.sh"):
        assert os.access(REPO / script, os.X_OK), script
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
    assert "--clock-shift +400d" in ci


# -- commands ---------------------------------------------------------------------------------

GLOBAL_OPTIONS = {name for param in main.params for name in (*param.opts, *param.secondary_opts)}
GLOBAL_OPTIONS |= {"-h", "--help", "--version"}
GLOBAL_WITH_VALUE = {"--config", "--log-format", "--log-level"}
STOP = {"#", "|", ">", ">>", "2>&1", "&&", ";"}


def command_lines(text: str) -> Iterator[str]:
    """Every `rollup …` the page gives: lines of its code blocks that run rollup, and inline code."""
    for _, content in blocks(text):
        for line in content.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|;", line):
                words = part.strip().removeprefix("$ ").split(" ", 1)
                if words[0] == "rollup" or words[0].endswith("/rollup"):
                    yield "rollup " + (words[1] if len(words) > 1 else "")
    for code in INLINE_CODE.findall(prose(text)):
        if code.startswith("rollup "):
            yield code


def unknown_options(line: str) -> list[str]:
    """Options of ``line`` that its command (or the group) does not have."""
    words = shlex.split(line.replace("\\|", "|").replace("'", ""), posix=False)[1:]
    command: click.Command = main
    names = set(GLOBAL_OPTIONS)
    unknown = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in STOP:
            break
        if word in GLOBAL_WITH_VALUE and command is main:
            skip = True
            continue
        if isinstance(command, click.Group) and word in command.commands:
            command = command.commands[word]
            names = GLOBAL_OPTIONS | {n for p in command.params for n in (*p.opts, *p.secondary_opts)}
            continue
        option = re.match(r"\[?(--?[a-z][\w-]*)", word)
        if option and option.group(1) not in names:
            unknown.append(f"{option.group(1)} (rollup {command.name})")
    return unknown


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_option_the_page_gives_a_command_exists(page: Path) -> None:
    found = {line: unknown_options(line) for line in command_lines(page.read_text())}
    assert {line: bad for line, bad in found.items() if bad} == {}


def test_the_option_check_finds_the_readmes_commands_and_catches_a_misspelt_option() -> None:
    assert len(set(command_lines(README.read_text()))) >= 9
    assert unknown_options("rollup backfill JOB --start T --end T --froce") == ["--froce (rollup backfill)"]
    assert unknown_options("rollup --log-format json run --now T") == []
    assert unknown_options("rollup import cq --from URL --check --start T") == []


# -- examples ---------------------------------------------------------------------------------


TOML_EXAMPLES = [
    pytest.param(content, id=f"{page_id(page)}-{number}")
    for page in PAGES
    for number, (language, content) in enumerate(blocks(page.read_text()))
    if language == "toml"
]


@pytest.mark.parametrize("content", TOML_EXAMPLES)
def test_every_toml_example_parses_and_a_whole_job_profile_or_settings_file_loads(
    content: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("ROLLUP_")]:
        monkeypatch.delenv(name)
    data = tomllib.loads(content)
    path = tmp_path / "example.toml"
    path.write_text(content)
    if "type" in data:
        load_sink_profile(path)
    elif {"name", "source", "window", "fields", "output"} <= data.keys():
        load_job(path)
    elif data.keys() & {"sources", "serve", "ledger"}:
        load_settings(path)


# -- reliability.md ---------------------------------------------------------------------------

TEST_FILE = re.compile(r"((?:unit|integration|contract)/[\w/]+\.py)(?:::(\w+))?(?:\[[^\]]*\])?$")
TEST_IN_FILE = re.compile(r"::(\w+)(?:\[[^\]]*\])?$")


def test_every_test_the_reliability_page_names_exists() -> None:
    text = (REPO / "docs" / "reliability.md").read_text()
    missing = []
    named = 0
    section_file: Path | None = None  # "(`integration/x.py` unless said otherwise)" before a table
    for line in text.splitlines():
        if line.startswith("#"):
            section_file = None
        elif not line.startswith("|"):
            for code in INLINE_CODE.findall(line):
                whole = TEST_FILE.match(code)
                if whole and whole.group(2) is None:
                    section_file = REPO / "tests" / whole.group(1)
            continue
        current = section_file
        for code in INLINE_CODE.findall(line):
            whole = TEST_FILE.match(code)
            if whole:
                current = REPO / "tests" / whole.group(1)
                test = whole.group(2)
            else:
                alone = TEST_IN_FILE.match(code)
                test = alone.group(1) if alone else None
                if test is None:
                    continue
            if current is None or not current.exists():
                missing.append(code)
            elif test is not None:
                named += 1
                if not re.search(rf"^def {test}\(", current.read_text(), re.M):
                    missing.append(f"{current.relative_to(REPO)}::{test}")
    assert named > 50
    assert missing == []
