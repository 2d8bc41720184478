"""The docs' options tables are `options_table` of each algorithm's config (the code is the source);
`python tests/test_docs.py` rewrites them after a config changes."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from metarlkit import algos
from metarlkit.experiment.config import options_table

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"(<!-- options: (?P<name>[\w-]+)[^\n]*-->\n)(?P<body>.*?)(<!-- /options -->)", re.S)


def blocks() -> dict[str, tuple[Path, str]]:
    """{algorithm: (page, the block's current table)} for every options block in docs/."""
    found = {}
    for page in sorted(DOCS.glob("*.md")):
        for m in BLOCK.finditer(page.read_text()):
            found[m["name"]] = (page, m["body"].strip())
    return found


def rewrite() -> None:
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        new = BLOCK.sub(lambda m: m[1] + options_table(algos.get(m["name"]).config) + "\n" + m[4], text)
        if new != text:
            page.write_text(new)
            print(f"rewrote {page}")


@pytest.mark.parametrize("name", list(algos.BUILTIN))
def test_options_table_in_the_docs_is_the_configs(name):
    found = blocks()
    assert name in found, f"no '<!-- options: {name} -->' block in docs/; add one to the algorithm's page"
    page, body = found[name]
    assert body == options_table(algos.get(name).config), (
        f"{page.name}'s options table for {name} is out of date; run: .venv/bin/python tests/test_docs.py")


def test_every_docs_link_to_a_page_resolves():
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([\w-]+\.md)(?:#[\w-]+)?\)", page.read_text()):
            assert (DOCS / target).exists(), f"{page.name} links to missing {target}"


if __name__ == "__main__":
    rewrite()
    sys.exit(0)
