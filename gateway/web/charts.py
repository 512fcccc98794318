"""Charts drawn on the server as SVG by pygal (pure Python, no JavaScript), each shown beside a table of its data.

pygal's interactive tooltips need its script: they are left out (no `js`), and so are the per-point descriptions
that only they show, which keeps a chart near 10 KB. The SVG is an image with a title for screen readers
(`role="img"`, `aria-labelledby`); the figures themselves are read in the table beside it.
"""
from __future__ import annotations

import re
import uuid

import pygal
from pygal.style import Style

STYLE = Style(background="transparent", plot_background="transparent", foreground="#1b1b1b",
              foreground_strong="#1b1b1b", foreground_subtle="#505050", opacity=".85", opacity_hover="1",
              colors=("#00405f", "#b3261e", "#00703c", "#7a4a00", "#5b2d8e", "#505050"),
              font_family="system-ui, sans-serif", label_font_size=12, major_label_font_size=12,
              legend_font_size=13, title_font_size=15)
COMMON = dict(js=[], disable_xml_declaration=True, style=STYLE, width=640, height=320, pretty_print=False,
              explicit_size=False, show_minor_x_labels=False, truncate_legend=40, truncate_label=-1, margin=12,
              no_data_text="Aucune donnée")
_DESC = re.compile(r'<desc class="(?:value|x|y|label)">[^<]*</desc>|<!--.*?-->', re.S)


def _svg(chart, title: str) -> str:
    chart.title = title
    svg = _DESC.sub("", chart.render(is_unicode=True))
    label = f"graph-{uuid.uuid4().hex[:8]}"
    svg = svg.replace("<svg ", f'<svg role="img" aria-labelledby="{label}" ', 1)
    return svg.replace("<defs>", f'<title id="{label}">{_escape(title)}</title><defs>', 1)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def lines(title: str, labels: list[str], series: dict[str, list[float | None]], every: int = 1) -> str:
    """Values over time (the Happy Index of each site), 0 to 100."""
    chart = pygal.Line(**COMMON, range=(0, 100), show_dots=len(labels) <= 31, dots_size=2.5,
                       x_labels_major_every=max(1, every), allow_interruptions=True, legend_at_bottom=True)
    chart.x_labels = labels
    for name, values in series.items():
        chart.add(name, values)
    return _svg(chart, title)


def bars(title: str, labels: list[str], series: dict[str, list[float | None]], horizontal: bool = False,
         top: float | None = None) -> str:
    """Side by side (sites) or by hour of the day (a profile)."""
    kind = pygal.HorizontalBar if horizontal else pygal.Bar
    options = dict(COMMON, show_legend=len(series) > 1, legend_at_bottom=True)
    if top is not None:
        options["range"] = (0, top)
    chart = kind(**options)
    chart.x_labels = labels
    for name, values in series.items():
        chart.add(name, values)
    return _svg(chart, title)
