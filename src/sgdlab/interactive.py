"""An explorable figure as one display object: an HTML rendering for the web, a PNG for print.

The output form is chosen by how Quarto 1.7 treats a cell's display data (quarto-cli v1.7.34):

- `src/core/jupyter/widgets.ts`, `extractJupyterWidgetDependencies` / `haveOutputType`: if ANY
  display output of a page has a `text/html` or `application/javascript` key — chosen or not —
  `includesForJupyterWidgetDependencies` puts require.js and jQuery from cdnjs in the page's head.
  So the bundle must have neither key.
- `src/core/jupyter/display-data.ts`, `displayDataMimeType`: the priority is
  [text/markdown, image/svg+xml, image/png, image/jpeg] for every format; HTML puts the widget,
  javascript and html types in front, LaTeX appends text/latex and application/pdf after. Without
  html/javascript keys, `text/markdown` wins for HTML and for the PDF alike.

So the bundle is {text/markdown, image/png, text/plain}, and the Markdown itself carries both
renderings: a raw ```` ```{=html} ```` block (passed through by Pandoc to HTML only, dropped
elsewhere) and, in a `content-hidden when-format="html"` div, the PNG as a data-URI image. For the
PDF, Quarto's `pdfImages` filter (`src/resources/filters/quarto-post/pdf-images.lua`, through
`modules/mediabag.lua`, which decodes `data:image/...;base64,` sources) writes it to a file for
LaTeX. The built-in engine makes the same choice (`render.output.display_mime`).

The drawing script and its CSS ride along with every figure, each guarded by an element id so
that a page runs them once; the built-in engine, which writes the whole book as one page, keeps
only the first copy (`render.output.drop_repeated_assets`).
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from importlib import resources

import numpy as np
import pandas as pd

from . import i18n
from .display import report_figure
from .i18n import t

ASSET_IDS = ("sgdlab-explore-css", "sgdlab-explore-js")


def asset(name: str) -> str:
    """A file of the package's assets/ directory (the drawing script, its CSS)."""
    return resources.files("sgdlab").joinpath("assets", name).read_text(encoding="utf-8")


def script_words() -> dict[str, str]:
    """The translations of explore.js's words (each `W("…")` of the script) in the current language."""
    keys = [json.loads(f'"{k}"') for k in re.findall(r'\bW\("((?:[^"\\]|\\.)*)"', asset("explore.js"))]
    return i18n.words(keys)


def _with_words(spec: dict) -> dict:
    """The spec with the script's words when they are not English (an English page stays as it was)."""
    found = script_words()
    return {**spec, "words": found} if found else spec


def rounded(values, digits: int = 5):
    """Nested lists of floats to `digits` significant digits, non-finite as None (JSON has no NaN)."""
    if isinstance(values, np.ndarray | pd.Series):
        values = values.tolist()
    if isinstance(values, list | tuple):
        return [rounded(v, digits) for v in values]
    if isinstance(values, bool | int | str) or values is None:
        return values
    v = float(values)
    return float(f"{v:.{digits}g}") if math.isfinite(v) else None


class Explorable:
    """What a report cell returns: `_repr_mimebundle_` gives Quarto and Jupyter the forms above."""

    def __init__(self, ident: str, kind: str, spec: dict, controls: list[dict], panels: list[str],
                 png: bytes, alt: str) -> None:
        self.ident, self.kind, self.spec, self.controls, self.panels = ident, kind, spec, controls, panels
        self.png, self.alt = png, alt

    def data_json(self) -> str:
        """The embedded frames, as in the page (`</` escaped so the script element cannot end early)."""
        return json.dumps({"kind": self.kind, **self.spec}, ensure_ascii=False, separators=(",", ":")
                          ).replace("</", "<\\/")

    def html(self) -> str:
        """The figure's HTML: controls, empty SVG panels the script draws into, the data; then the assets."""
        controls = "".join(_control(self.ident, c) for c in self.controls)
        panels = "".join(f'<svg class="sx-panel {cls}" viewBox="{box}" role="img" aria-label="{self.alt}"></svg>'
                         for cls, box in (p.split("|") for p in self.panels))
        return (f'<style id="{ASSET_IDS[0]}">{asset("explore.css")}</style>\n'
                f'<div class="sgdlab-explore" id="{self.ident}">'
                f'<div class="sx-controls">{controls}</div><div class="sx-panels">{panels}</div>'
                f'<p class="sx-readout" aria-live="polite"></p>'
                f'<script type="application/json" class="sx-data">{self.data_json()}</script></div>\n'
                f'<script id="{ASSET_IDS[1]}">{asset("explore.js")}</script>')

    def markdown(self) -> str:
        """Raw HTML for HTML formats; the PNG (as a data URI) for every other format."""
        png = base64.b64encode(self.png).decode("ascii")
        return (f"```{{=html}}\n{self.html()}\n```\n\n"
                f'::: {{.content-hidden when-format="html"}}\n'
                f"![](data:image/png;base64,{png}){{width=100%}}\n:::\n")

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {"text/markdown": self.markdown(), "image/png": base64.b64encode(self.png).decode("ascii"),
                "text/plain": f"<explorable figure {self.ident}: {self.alt}>"}


def _control(ident: str, c: dict) -> str:
    """A native control (keyboard and touch for free): a range over indices, or a select."""
    name, label, values, initial = c["name"], c["label"], c["values"], c["initial"]
    cid = f"{ident}-{name}"
    if c.get("range"):
        labels = json.dumps(values, ensure_ascii=False).replace('"', "&quot;")
        return (f'<label class="sx-range" for="{cid}">{label} <input type="range" id="{cid}" min="0" '
                f'max="{len(values) - 1}" step="1" value="{initial}" data-control="{name}" data-labels="{labels}" '
                f'aria-valuetext="{values[initial]}"><output for="{cid}">{values[initial]}</output></label>')
    options = "".join(f'<option value="{i}"{" selected" if i == initial else ""}>{v}</option>'
                      for i, v in enumerate(values))
    return f'<label for="{cid}">{label} <select id="{cid}" data-control="{name}">{options}</select></label>'


def png_bytes(fig) -> bytes:
    """A house-style Figure as PNG bytes (no timestamp: identical figures, identical bytes)."""
    from .plots.style import save

    buf = io.BytesIO()
    save(fig, buf)
    return buf.getvalue()


# --------------------------------------------------------------------------- the two figures


def floor_curves(result) -> dict:
    """What the page draws per frame, to 3 digits (the page's weight): w − w* and loss − floor, taken in
    float64 from the run's float32 values, so that the differences keep their digits."""
    f = result.frames
    return {"dw": rounded(result.trace - f.w_star.to_numpy()[:, None], 3),
            "gap": rounded(result.loss - f.floor.to_numpy()[:, None], 3)}


@report_figure
def floor_figure(result, ident: str = "lf-explore") -> Explorable:
    """Chapter 2's explorable figure from `explore.floor_grid`; starts at the article's run (3.1, w·x, η = 0.03)."""
    from . import explore
    from .plots import explore as plots

    f, cfg = result.frames, result.config
    lrs = cfg.effective_lrs
    spec = {"lrs": rounded(lrs), "schedules": [t(s) for s in explore.SCHEDULES], "steps_per_epoch": 4,
            "show_epochs": cfg.show_epochs, "tail": cfg.tail, "last_step": cfg.epochs * 4,
            "loss_epochs": [int(e) for e in result.loss_epochs], "gap_range": [1e-12, 1e2],
            "frames": {"w_star": rounded(f.w_star), "floor": rounded(f.floor), "width": rounded(f.width),
                       "offset": rounded(f.offset), "final": rounded(f.final_loss),
                       "diverged": [int(v) for v in f.diverged_step], **floor_curves(result)}}
    controls = [
        {"name": "lr", "label": t("step size η"), "range": True, "values": [f"{v:.3g}" for v in lrs],
         "initial": min(range(len(lrs)), key=lambda i: abs(lrs[i] - 0.03))},
        {"name": "labels", "label": t("labels"), "values": [t("clean (y = x)"), t("last label 3.1")], "initial": 1},
        {"name": "model", "label": t("model"), "values": list(explore.MODELS), "initial": 0},
        {"name": "sampling", "label": t("sampling"), "values": [t(v) for v in explore.SAMPLINGS], "initial": 0},
        {"name": "schedule", "label": t("schedule"), "values": [t(v) for v in explore.SCHEDULES], "initial": 0},
    ]
    alt = t("Interactive: w minus w* after every step over the last epochs, and the loss above its floor per "
            "epoch, for the chosen step size, labels, model, sampling and schedule.")
    return Explorable(ident, "floor", _with_words(spec), controls, ["|0 0 360 258", "|0 0 360 258"],
                      png_bytes(plots.floor_grid(result)), alt)


@report_figure
def steps_figure(result, ident: str = "steepest-explore") -> Explorable:
    """Chapter 3's explorable figure from `explore.steps_grid`; starts at the article's η·L on the baseline."""
    from . import explore
    from .plots import explore as plots

    problems = []
    for p, name in enumerate(explore.PROBLEMS):
        runs = result.runs[result.runs.problem == name]
        xy = lambda a: rounded(np.moveaxis(a, -1, 0), 4)  # (..., m, 2) -> [xs, ys] per polyline  # noqa: E731
        problems.append({
            "L": rounded(runs.L.iloc[0]), "kappa": rounded(runs.L.iloc[0] / runs.mu.iloc[0]),
            "lrs": rounded(runs.lr), "diverged": [int(v) for v in runs.diverged_step],
            "excess": rounded(runs.excess_final), "paths": [xy(a) for a in result.paths[p]],
            "levels": [xy(a) for a in result.levels[p]], "balls": [xy(a) for a in result.balls[p]],
            "dirs": rounded(result.directions[p]), "optimum": rounded(result.optimum[p]),
            "start": rounded(result.start[p]), "view": rounded(plots._view(result, p)),
            "xlabel": "w1" if p == 0 else "w", "ylabel": "w2" if p == 0 else "b"})
    ratios = list(result.runs.ratio.unique())
    spec = {"ratios": rounded(ratios), "norms": list(explore.NORMS), "steps": result.config.steps,
            "problem_names": [t(p) for p in explore.PROBLEMS], "problems": problems}
    controls = [
        {"name": "ratio", "label": t("step size η·L"), "range": True, "values": [f"{r:.3g}" for r in ratios],
         "initial": 0},  # the article's (the smallest)
        {"name": "problem", "label": t("loss"), "values": [t(p) for p in explore.PROBLEMS], "initial": 0},
        {"name": "norm", "label": t("norm"),
         "values": [f"{n}" + (t("-norm") if n == "H" else "") for n in explore.NORMS], "initial": 0},
    ]
    alt = t("Interactive: level sets of the loss, the gradient-descent path for the chosen step size, and the unit "
            "ball and steepest unit step of the chosen norm at the start.")
    return Explorable(ident, "steps", _with_words(spec), controls, ["sx-square|0 0 372 402"],
                      png_bytes(plots.steps_grid(result)), alt)
