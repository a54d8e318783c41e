"""Checking a page in the browser with axe-core, and for sideways scrolling on small screens."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from speakup import ROOT

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
#: every page is checked at a desktop size and at the 320 CSS pixels of WCAG 1.4.10 reflow
VIEWPORTS = {
    "desktop": {"width": 1280, "height": 800},
    "320px": {"width": 320, "height": 640},
}
#: WCAG 2.2 AA (which includes 2.0 and 2.1 A and AA) plus axe's best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]

_RUN_AXE = """async (tags) => {
  const results = await axe.run(document, {
    runOnly: {type: "tag", values: tags},
    resultTypes: ["violations"],  // details for violations only: faster
  });
  return results.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.map((n) => ({target: n.target, html: n.html, summary: n.failureSummary})),
  }));
}"""

_WIDE_ELEMENTS = """(width) => Array.from(document.querySelectorAll("body *"))
  .filter((el) => el.getBoundingClientRect().right > width + 0.5)
  .slice(0, 10)
  .map((el) => `${el.outerHTML.slice(0, 160)} (right edge ${el.getBoundingClientRect().right}px)`)
"""


@cache
def axe_source() -> str:
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `npm ci`.", pytrace=False)
    return AXE.read_text(encoding="utf-8")


def _describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']}")
        for node in v["nodes"]:
            lines.append(f"    at {' '.join(map(str, node['target']))}")
            lines.append(f"       {node['html']}")
            lines.extend(f"       {s}" for s in (node["summary"] or "").splitlines())
    return "\n".join(lines)


def assert_accessible(page: Page) -> None:
    """No axe-core violation of WCAG 2.2 AA or best practice on the page as it is now.

    axe is evaluated through the DevTools protocol rather than added as a <script>: the
    page's CSP forbids inline script, and it must not be loosened for the test.
    """
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source())
    violations = page.evaluate(_RUN_AXE, AXE_TAGS)
    assert not violations, f"axe found problems on {page.url}:\n{_describe(violations)}"


def assert_no_sideways_scroll(page: Page, width: int) -> None:
    """The page fits the viewport's width (WCAG 1.4.10 reflow at 320 CSS pixels)."""
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate(_WIDE_ELEMENTS, width) if scroll_width > width else []
    assert scroll_width <= width, (
        f"{page.url} scrolls sideways at {width}px (scrollWidth {scroll_width}); widest:\n  "
        + "\n  ".join(wide)
    )


def expect_heading(page: Page, name: str | re.Pattern[str]) -> None:
    """The page's one top-level heading is ``name``: the page being checked has loaded."""
    expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()
