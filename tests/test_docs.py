"""The documents point only at what the repository ships: every dotted ``arnn_gen.``
name resolves to a module or an attribute, and every repository path they name exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

#: A dotted name in backquotes, such as `arnn_gen.symbolic.derive.site_energy`.
_DOTTED = re.compile(r"`(arnn_gen(?:\.[A-Za-z_]\w*)+)(?:\(\))?`")


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_dotted_names_in_the_documents_resolve(document):
    names = set(_DOTTED.findall(document.read_text(encoding="utf-8")))
    assert sorted(name for name in names if not _resolves(name)) == []


#: A repository path in backquotes: a top-level folder of the repository, then a path.
_PATH = re.compile(
    r"`((?:arnn_gen|benchmarks|docs|examples|generated|templates|tests|scripts)/[\w./-]*)`"
)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_repository_paths_in_the_documents_exist(document):
    paths = set(_PATH.findall(document.read_text(encoding="utf-8")))
    missing = [path for path in paths if "*" not in path and not (ROOT / path).exists()]
    assert sorted(missing) == []
