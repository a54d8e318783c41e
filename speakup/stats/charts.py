"""Charts for published tables, rendered once at release time as SVG (pygal).

Only published values are drawn; a suppressed or withheld cell is drawn as no bar and the
table beside the chart says why. No script and no external reference is emitted.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import pygal
from pygal.style import Style

# pygal installs an old-style import hook for its plugins; nothing here needs it, and on
# Python 3.11 it makes every later import warn. Remove it.
sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, pygal.PluginImportFixer)]

_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)

_STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#212b32",
    foreground_strong="#212b32",
    foreground_subtle="#4c6272",
    colors=("#005eb8", "#330072", "#007f3b", "#ffb81c", "#d5281b", "#768692"),
    font_family="arial, sans-serif",
    label_font_size=12,
    major_label_font_size=12,
    legend_font_size=12,
    title_font_size=14,
)


def _config(title: str) -> dict[str, Any]:
    return {
        "title": title,
        "style": _STYLE,
        "js": [],  # no script, from anywhere
        "disable_xml_declaration": True,
        "width": 640,
        "height": 360,
        "show_legend": True,
        "legend_at_bottom": True,
        "print_values": True,
        "print_zeroes": True,
        "truncate_label": -1,
        "x_label_rotation": 0,
    }


def bar_chart(title: str, labels: list[str], series: dict[str, list[int | None]]) -> str:
    """A horizontal bar chart; ``None`` values are drawn as gaps."""
    chart = pygal.HorizontalBar(**_config(title))
    chart.x_labels = labels
    for name, values in series.items():
        chart.add(name, values)
    svg = chart.render(is_unicode=True)
    # pygal always embeds a configuration <script> and comments naming its home pages;
    # neither is wanted (the chart is shown as an image, which never runs script anyway).
    svg = _SCRIPT.sub("", svg)
    return _COMMENT.sub("", svg)
