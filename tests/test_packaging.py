"""The distribution's name, and the install lines the docs give an admin.

PyPI's `digest` is someone else's project, so `pip install 'digest[postgres]'` installed
it instead of this one (issue 17, defect 2). The distribution is `digest-publisher`; the
import package and the command stay `digest`.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import distribution
from pathlib import Path

import digest

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "digest-publisher"
#: What an install line may install: this repository or an unpacked release (`.`,
#: `./digest-publisher-0.1.0`, `/srv/digest/src`), a release file (`.whl`, `.tar.gz`), or
#: the distribution by its own name; each with extras such as `[postgres]`.
ALLOWED = re.compile(
    r"""^['"]?(\.{1,2}|\.{0,2}/\S*|\S+\.whl|\S+\.tar\.gz|digest-publisher)(\[[a-z,]+\])?['"]?$"""
)


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_distribution_has_a_name_of_its_own() -> None:
    project = _pyproject()
    assert project["name"] == DISTRIBUTION
    assert project["scripts"] == {"digest": "digest.launch:run"}  # the command stays digest
    installed = distribution(DISTRIBUTION)
    assert installed.version == project["version"] == digest.__version__


def _install_lines() -> list[tuple[str, str]]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line in doc.read_text(encoding="utf-8").splitlines():
            if re.search(r"\bpipx? install\b", line):
                found.append((doc.name, line))
    return found


def test_every_install_line_installs_this_project() -> None:
    lines = _install_lines()
    assert any("pipx install" in line for _, line in lines)
    wrong = []
    for doc, line in lines:
        command = re.search(r"\bpipx? install\b(.*?)(`|#|$)", line)
        assert command is not None
        targets = [word for word in command.group(1).split()
                   if not word.startswith("-") and word not in ("-e",)]
        if not targets or not all(ALLOWED.match(t) for t in targets):
            wrong.append(f"{doc}: {line.strip()}")
    assert not wrong, "install lines that fetch another project from PyPI:\n" + "\n".join(wrong)
