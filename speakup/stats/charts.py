"""Charts for published tables, rendered once at release time as SVG (pygal).

Only published values are drawn. A hidden (suppressed or withheld) cell is drawn as a hatched
bar labelled "fewer than k or withheld", never as a gap, which would read as zero. Every hidden
bar has the same length (k) and the same label, so the drawing tells no more than the table.
No script and no external reference is emitted (the hatch is an in-file <pattern>).
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


#: the hatch that marks a hidden cell (diagonal lines, so it differs from every colour and
#: survives printing in black and white)
HATCH_ID = "speakup-hidden-hatch"
_HATCH = (
    f'<pattern id="{HATCH_ID}" patternUnits="userSpaceOnUse" width="8" height="8" '
    'patternTransform="rotate(45)"><rect width="8" height="8" fill="#ffffff"/>'
    '<line x1="0" y1="0" x2="0" y2="8" stroke="#4c6272" stroke-width="3"/></pattern>'
)


def _hidden_bar(k: int) -> dict[str, Any]:
    label = f"fewer than {k} or withheld"
    return {
        "value": k,
        "label": label,
        "formatter": lambda _value: label,
        "style": f"fill: url(#{HATCH_ID}); stroke: #4c6272; stroke-width: 1",
    }


def bar_chart(title: str, labels: list[str], series: dict[str, list[int | None]], *, k: int) -> str:
    """A horizontal bar chart; ``None`` values (hidden cells) are hatched and labelled."""
    config = _config(title)
    config["defs"] = [_HATCH]
    chart = pygal.HorizontalBar(**config)
    chart.x_labels = labels
    for name, values in series.items():
        chart.add(name, [_hidden_bar(k) if v is None else v for v in values])
    svg = chart.render(is_unicode=True)
    # pygal always embeds a configuration <script> and comments naming its home pages;
    # neither is wanted (the chart is shown as an image, which never runs script anyway).
    svg = _SCRIPT.sub("", svg)
    return _COMMENT.sub("", svg)
