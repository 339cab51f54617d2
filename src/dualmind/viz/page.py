"""The report's single self-contained HTML page: inline CSS, PNGs as data: URIs, no network.

A tiny inline script marks the page once it has loaded (``data-viz-loaded`` on <body>, and the
number of figures that decoded) and writes any JavaScript error or ``console.error`` into a
visible box (``#viz-errors``): a headless browser's DOM dump then shows whether a person opening
the page would have seen it whole.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

STYLE = """
body { font-family: system-ui, -apple-system, 'DejaVu Sans', sans-serif; margin: 1.5em auto;
       max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .4em .8em; margin: .5em 0; }
.meta td { padding: 0 1em 0 0; vertical-align: top; } .meta td:first-child { color: #666; }
figure { margin: .8em 0; } figcaption { color: #555; font-size: .9em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
table.lens { border-collapse: collapse; font-size: .8em; }
table.lens td, table.lens th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; }
.symbols { font-family: 'DejaVu Sans Mono', monospace; font-size: .85em; line-height: 1.6; }
.symbols span { border: 1px solid #ddd; border-radius: 3px; padding: 0 3px; margin: 1px; }
.doc-start { border-left: 3px solid #d62728 !important; }
#viz-errors { color: #b00; white-space: pre-wrap; }
footer { color: #666; font-size: .85em; margin-top: 2em; }
"""

# Runs first in <head>: errors anywhere later on the page are caught and shown.
SCRIPT = """
(function () {
  var errors = [];
  function show() {
    var box = document.getElementById('viz-errors');
    if (box) { box.textContent = errors.join('\\n'); }
    if (document.body) { document.body.setAttribute('data-viz-errors', String(errors.length)); }
  }
  window.addEventListener('error', function (e) {
    errors.push('error: ' + (e.message || (e.target && (e.target.src || e.target.tagName))));
    show();
  }, true);
  var original = console.error;
  console.error = function () {
    errors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
    show();
    return original.apply(console, arguments);
  };
  window.addEventListener('load', function () {
    var images = document.images, decoded = 0;
    for (var i = 0; i < images.length; i++) {
      if (images[i].complete && images[i].naturalWidth > 0) { decoded++; }
      else { errors.push('figure did not load: ' + images[i].alt); }
    }
    document.body.setAttribute('data-viz-images', decoded + '/' + images.length);
    document.body.setAttribute('data-viz-loaded', 'yes');
    show();
  });
})();
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


@dataclass
class Section:
    """One panel of the report; ``key`` becomes its id and ``data-panel``."""

    key: str
    title: str
    intro: str = ""
    notes: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)  # HTML fragments, in order

    def figure(self, png: bytes, caption: str) -> None:
        data = base64.b64encode(png).decode("ascii")
        self.parts.append(f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
                          f"<figcaption>{esc(caption)}</figcaption></figure>")

    def note(self, text: str) -> None:
        self.notes.append(text)

    def html(self) -> str:
        notes = "".join(f'<p class="note">{esc(n)}</p>' for n in self.notes)
        intro = f"<p>{esc(self.intro)}</p>" if self.intro else ""
        return (f'<section id="{esc(self.key)}" data-panel="{esc(self.key)}">'
                f"<h2>{esc(self.title)}</h2>{intro}{notes}{''.join(self.parts)}</section>")


def symbols_html(glosses: list[str], doc_starts: set[int]) -> str:
    """The input as the core sees it: one box per symbol, a red edge where a document starts."""
    spans = []
    for i, g in enumerate(glosses):
        cls = ' class="doc-start"' if i in doc_starts and i > 0 else ""
        spans.append(f'<span{cls} title="position {i}">{i}:{esc(g)}</span>')
    return f'<div class="symbols">{" ".join(spans)}</div>'


def lens_table(layer_labels: list[str], position_labels: list[str],
               cells: list[list[list[tuple[str, float]]]]) -> str:
    """Top-k symbols per layer (rows) and position (columns), with probabilities."""
    head = "".join(f"<th>{esc(p)}</th>" for p in position_labels)
    rows = []
    for label, row in zip(layer_labels, cells, strict=True):
        tds = "".join("<td>" + "<br>".join(f"{esc(w)} {p:.2f}" for w, p in cell) + "</td>"
                      for cell in row)
        rows.append(f"<tr><th>{esc(label)}</th>{tds}</tr>")
    return (f'<details><summary>top symbols as a table</summary><table class="lens">'
            f"<tr><th>layer</th>{head}</tr>{''.join(rows)}</table></details>")


def meta_table(rows: list[tuple[str, str]]) -> str:
    return ('<table class="meta">' + "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>"
                                             for k, v in rows) + "</table>")


def render(title: str, header: str, sections: list[Section], footer: str) -> str:
    body = "".join(s.html() for s in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{esc(title)}</title><style>{STYLE}</style><script>{SCRIPT}</script>"
            f"</head><body><h1>{esc(title)}</h1>{header}"
            f'<div id="viz-errors" role="alert"></div>{body}<footer>{footer}</footer>'
            f"</body></html>\n")
