"""axe-core in the browser tests: `check(page)` runs Deque's axe-core (vendored in
tests/data/axe, see its README) on what the page shows now and returns its violations;
`assert_accessible(page)` fails on any at impact serious or critical, naming each rule,
its WCAG criteria and the elements it found, and keeps the moderate and minor ones in
`MODERATE` for the suite's summary.

The rules run are WCAG 2.0, 2.1 and 2.2 at levels A and AA plus axe's best practices.
Frames are checked too: axe is injected into every frame that can run it, and a
sandboxed frame that cannot (the desk's preview of the email) is checked on its own by
the tests that render the email as a page.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.conftest import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Page

AXE_JS = ROOT / "tests" / "data" / "axe" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
FAILING = ("serious", "critical")

# (page label, rule id, impact, help): what axe reported below serious, gathered over
# the run; the summary at the end of the run lists them by rule, and they are written
# to test-artifacts/axe-below-serious.txt.
MODERATE: set[tuple[str, str, str, str]] = set()

_SCRIPT: str | None = None


def _script() -> str:
    global _SCRIPT
    if _SCRIPT is None:
        _SCRIPT = Path(AXE_JS).read_text(encoding="utf-8")
    return _SCRIPT


def check(page: Page) -> list[dict[str, Any]]:
    """axe's violations on the page as it is now (every impact)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated over the DevTools protocol, so the pages' own CSP (no scripts at
        # all) does not stop it.
        page.evaluate(_script())
    result: dict[str, Any] = page.evaluate(
        """async (tags) => await axe.run(document, {
               runOnly: {type: 'tag', values: tags},
               resultTypes: ['violations'],
               iframes: false,
           })""", TAGS)
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def describe(violations: list[dict[str, Any]]) -> str:
    """Each violation as a rule, its impact and criteria, and up to three elements."""
    lines = []
    for v in violations:
        criteria = ", ".join(t for t in v["tags"] if t.startswith("wcag") and t[4:].isdigit())
        lines.append(f"- {v['id']} ({v['impact']}; {criteria or 'best practice'}): "
                     f"{v['help']}")
        for node in v["nodes"][:3]:
            lines.append(f"    {' '.join(map(str, node['target']))}: "
                         f"{node['html'][:160]}")
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            if summary:
                lines.append(f"      {summary[:300]}")
    return "\n".join(lines)


def assert_accessible(page: Page, label: str | None = None) -> None:
    """No violation at impact serious or critical on the page as it is now; moderate
    and minor ones are kept in MODERATE under `label` (the page's path by default)."""
    label = label or page.url
    violations = check(page)
    for v in violations:
        if v["impact"] not in FAILING:
            MODERATE.add((label, v["id"], v["impact"] or "?", v["help"]))
    bad = [v for v in violations if v["impact"] in FAILING]
    assert not bad, f"axe-core finds on {label}:\n{describe(bad)}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The violations below serious that the run's pages had, a line per rule with the
    pages it was found on; also in test-artifacts/axe-below-serious.txt."""
    if not MODERATE:
        return
    rules: dict[tuple[str, str, str], list[str]] = {}
    for label, rule, impact, help_ in sorted(MODERATE):
        rules.setdefault((rule, impact, help_), []).append(label)
    lines = [f"{rule} ({impact}): {help_}; on {len(labels)} page(s): "
             + ", ".join(labels[:6]) + (" …" if len(labels) > 6 else "")
             for (rule, impact, help_), labels in sorted(rules.items())]
    terminalreporter.section("axe-core: violations below serious")
    for line in lines:
        terminalreporter.write_line(line)
    target = ROOT / "test-artifacts" / "axe-below-serious.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
