"""Every code example in docs/ runs: each page's Python and shell blocks, in order, against the fake APIs and moto.

Blocks are found by Sybil (https://sybil.readthedocs.io): fenced ```python and ```sh blocks, plus hidden setup in
`<!-- invisible-code-block: python ... -->` comments. A page's Python blocks share one namespace, so a later block
can use what an earlier one made, as a reader would. A block meant only to be read is marked by the line before its
fence: `<!-- not-run: why -->`; any other fence (```text included) must carry that mark, or this suite fails.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from sybil import Document, Example
from sybil.parsers.markdown import CodeBlockParser

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: Every docs page, and the README (its examples are promises too).
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]
RUN = ("python", "sh")
NOT_RUN = re.compile(r"<!-- not-run: \S[^>]*-->")


def evaluate_python(example: Example) -> None:
    """Run a block as a module would, at its page's line numbers; top-level `await` runs on a fresh event loop."""
    source = "\n" * example.line + str(example.parsed)
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    code = compile(source, example.path, "exec", flags=flags, dont_inherit=True)
    result = eval(code, example.namespace)  # noqa: S307 - the docs' own examples
    if inspect.iscoroutine(result):
        asyncio.run(result)


def evaluate_sh(example: Example) -> None:
    """Run a block with bash (-e, -u, pipefail) in the page's folder and environment; any failing command fails it."""
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", str(example.parsed)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    if done.returncode != 0:
        raise AssertionError(f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}")


PARSERS = [CodeBlockParser("python", evaluate_python), CodeBlockParser("sh", evaluate_sh)]


def marked_not_run(document: Document, start: int) -> bool:
    """Whether the line just before the fence starting at `start` is a not-run mark."""
    before = document.text[:start].rstrip("\n").rsplit("\n", 1)[-1]
    return NOT_RUN.fullmatch(before.strip()) is not None


def examples(page: Path) -> tuple[Document, list[Example]]:
    document = Document.parse(str(page), *PARSERS)
    return document, [example for example in document.examples() if not marked_not_run(document, example.start)]


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("page", [p for p in PAGES if examples(p)[1]], ids=page_id)
def test_every_example_on_the_page_runs(page: Path, docs_world: dict[str, Any]) -> None:
    document, runnable = examples(page)
    document.namespace.update(docs_world)
    for example in runnable:
        try:
            example.evaluate()
        except BaseException as exc:
            raise AssertionError(f"{page_id(page)}:{example.line}: the example failed: {exc!r}") from exc


def fences(page: Path) -> list[tuple[int, str, str]]:
    """(line, language, line before) of every fenced block on a page, as Markdown renders it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found = []
    for token in MarkdownIt("commonmark").parse("\n".join(lines)):
        if token.type == "fence" and token.map is not None:
            start = token.map[0]
            found.append((start + 1, token.info.split(" ")[0], lines[start - 1].strip() if start else ""))
    return found


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_block_runs_or_is_marked_not_run(page: Path) -> None:
    """A fence is run (```python, ```sh) or carries a not-run mark with its reason; and Sybil sees every run one."""
    unmarked = [
        f"{page_id(page)}:{line}: ```{language or '(no language)'}"
        for line, language, before in fences(page)
        if language not in RUN and not NOT_RUN.fullmatch(before)
    ]
    assert not unmarked, "blocks neither run nor marked <!-- not-run: why -->:\n" + "\n".join(unmarked)
    shown = [line for line, language, before in fences(page) if language in RUN and not NOT_RUN.fullmatch(before)]
    _, runnable = examples(page)
    visible = [example.line for example in runnable if not example.document.text[example.start :].startswith("<!--")]
    assert visible == shown, "Sybil must run exactly the blocks a reader sees"


def test_not_run_marks_stand_before_a_fence() -> None:
    """A mark anywhere else would quietly mark nothing."""
    stray = []
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if NOT_RUN.search(line) and not (number < len(lines) and lines[number].lstrip().startswith("```")):
                stray.append(f"{page_id(page)}:{number}")
    assert not stray, stray
