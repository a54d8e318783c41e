"""Hidden cells are marked on charts with a hatch and a label, never drawn as an empty bar."""

from __future__ import annotations

import re

from speakup.stats.charts import HATCH_ID, bar_chart


def _bars(svg: str) -> list[str]:
    return re.findall(r'<g class="bar"[^>]*>.*?</g>', svg, re.S)


def test_a_hidden_cell_is_a_hatched_labelled_bar() -> None:
    svg = bar_chart(
        "Concerns", ["Shown", "Hidden", "Also hidden"], {"Concerns": [15, None, None]}, k=8
    )
    bars = _bars(svg)
    assert len(bars) == 3, "every row has a bar: none is left empty to read as zero"
    shown, *hidden = bars
    assert HATCH_ID not in shown and ">15<" in shown
    for bar in hidden:
        assert f"url(#{HATCH_ID})" in bar
        assert bar.count("fewer than 8 or withheld") >= 2  # the printed value and its label
    # Both hidden bars are drawn identically: the picture says nothing the label does not.
    geometry = [re.search(r'width="([\d.]+)"', b).group(1) for b in hidden]  # type: ignore[union-attr]
    assert geometry[0] == geometry[1]
    assert f'<pattern id="{HATCH_ID}"' in svg
    assert "<script" not in svg


def test_a_chart_without_hidden_cells_is_unchanged_in_kind() -> None:
    svg = bar_chart("Concerns", ["A", "B"], {"Concerns": [10, 20]}, k=8)
    assert "withheld" not in svg and f"url(#{HATCH_ID})" not in svg
