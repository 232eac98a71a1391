"""Docs that stand alone (issue 9: "`train --help` and three recipe comments name paths that do not exist";
"the docs, recipes and runtime messages cite `offline.md` and `reference.md §N`, which are not in the
repository").

- Every repository path named in a ``--help`` text (descriptions, epilogs, option help) of every command,
  read from the real parsers, and in a recipe's comments exists.
- No file of docs/, recipes/, README.md or src/ cites offline.md or reference.md.
- Every relative link of README.md and docs/ points to a file that exists.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from medix_r1.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
# A path into the repository: one of its top-level folders, then a path; or a top-level Markdown file.
REPO_PATH = re.compile(r"(?<![\w/.-])((?:recipes|docs|src|benchmarks|tests|\.ci)/[\w./-]*[\w/]|README\.md)")
OUTSIDE = re.compile(r"\b(offline\.md|reference\.md)")


def _parsers(parser: argparse.ArgumentParser, name: str = "medix-r1"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                yield from _parsers(subparser, f"{name} {sub}")


def _help_texts():
    for name, parser in _parsers(build_parser()):
        texts = [parser.description or "", parser.epilog or ""]
        texts += [a.help or "" for a in parser._actions if isinstance(a.help, str)]
        for text in texts:
            yield name, text


def _exists(path: str) -> bool:
    p = REPO / path.rstrip("/.")
    return p.exists() or any(REPO.glob(path)) if any(c in path for c in "*?[") else p.exists()


def _recipe_comments():
    for path in sorted((REPO / "recipes").rglob("*.y*ml")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if "#" in line:
                yield f"{path.relative_to(REPO)}:{n}", line.split("#", 1)[1]


def test_every_path_in_help_texts_exists():
    missing = [f"`{name} --help` names {m}" for name, text in _help_texts() for m in REPO_PATH.findall(text)
               if not _exists(m)]
    assert not missing, "\n".join(missing)


def test_every_path_in_recipe_comments_exists():
    missing = [f"{where} names {m}" for where, text in _recipe_comments() for m in REPO_PATH.findall(text)
               if not _exists(m)]
    assert not missing, "\n".join(missing)


def _cited_files():
    files = [REPO / "README.md", *(REPO / "docs").rglob("*"), *(REPO / "recipes").rglob("*"),
             *(REPO / "src").rglob("*")]
    return [f for f in files if f.is_file() and f.suffix in (".md", ".py", ".yaml", ".yml", ".txt", ".toml",
                                                              ".json", ".html", ".jinja", ".cfg")]


def test_nothing_cites_specs_outside_the_repository():
    cites = []
    for path in _cited_files():
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if OUTSIDE.search(line):
                cites.append(f"{path.relative_to(REPO)}:{n}: {line.strip()[:120]}")
    assert not cites, "cite docs/background.md (or another page in docs/) instead:\n" + "\n".join(cites)


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_relative_links_in_the_docs_resolve():
    broken = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} links to {target}")
    assert not broken, "\n".join(broken)


def test_the_checks_see_what_they_look_for():
    """The patterns find what issue 9 found (so the tests above cannot pass by matching nothing)."""
    assert REPO_PATH.findall("see recipes/qwen3_vl_8b_dapo.yaml and docs/perf.md") == [
        "recipes/qwen3_vl_8b_dapo.yaml", "docs/perf.md"]
    assert not _exists("recipes/qwen3_vl_8b_dapo.yaml") and _exists("recipes/demo/cpu.yaml")
    assert OUTSIDE.search("(reference.md §4)") and OUTSIDE.search('offline.md ("A real demo policy")')
    assert any(name == "medix-r1 train" for name, _ in _help_texts())
