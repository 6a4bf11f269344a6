"""No link in the repository's Markdown leaves it: every relative link of every tracked .md
file names a file or folder that git tracks (a clone has it), inside the repository.

Links to other sites (``https://…``) and anchors within a page are not files, and are left
alone; code blocks hold no links.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parents[2]

INLINE = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
HTML = re.compile(r"""<(?:a|img)\s[^>]*?(?:href|src)=["']([^"']+)["']""", re.IGNORECASE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
OUTSIDE = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, …


def tracked() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    return [name for name in listed.split("\0") if name]


def links(markdown: str) -> list[str]:
    text = FENCE.sub("", markdown)
    return [m for pattern in (INLINE, REFERENCE, HTML) for m in pattern.findall(text)]


def resolved(page: str, target: str) -> str:
    """``target`` as a repository path (``..`` first where it climbs above the root)."""
    base = PurePosixPath() if target.startswith("/") else PurePosixPath(page).parent
    parts: list[str] = []
    for part in (base / target.lstrip("/")).parts:
        if part == "..":
            if not parts:
                return "../" + target
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def broken(page: str, markdown: str, files: set[str], folders: set[str]) -> list[str]:
    """The relative links in ``markdown``, the text of ``page`` (a repository path), that
    name nothing a clone has."""
    out = []
    for link in links(markdown):
        target = link.split("#", 1)[0].split("?", 1)[0]
        if not target or OUTSIDE.match(target):
            continue
        name = resolved(page, target)
        if name not in files and name not in folders:
            out.append(f"{page}: {link}")
    return out


def test_every_relative_link_in_the_markdown_resolves_inside_the_repository() -> None:
    files = set(tracked())
    folders = {str(parent) for name in files for parent in PurePosixPath(name).parents}
    pages = sorted(name for name in files if name.endswith(".md"))
    assert "README.md" in pages and "docs/domain.md" in pages
    found = [
        bad
        for page in pages
        for bad in broken(page, (REPO / page).read_text(encoding="utf-8"), files, folders)
    ]
    assert found == []


def test_a_link_out_of_the_repository_or_to_nothing_is_found() -> None:
    files = {"README.md", "docs/domain.md"}
    folders = {".", "docs"}
    for link, ok in [
        ("domain.md", True),
        ("../README.md#two-commands", True),
        ("/docs/domain.md", True),
        ("../docs", True),
        ("https://example.org/x", True),
        ("#the-four-nets", True),
        ("../../shared/domain/README.md", False),
        ("missing.md", False),
    ]:
        found = broken("docs/x.md", f"See [it]({link}).", files, folders)
        assert (found == []) is ok, link
    fenced = "```\n[not a link](../../outside.md)\n```\n"
    assert broken("docs/x.md", fenced, files, folders) == []
