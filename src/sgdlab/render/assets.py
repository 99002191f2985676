"""Fonts for both engines, from packages the project installs (no font installed by hand).

Quarto runs `_prerender.py` (the book's `pre-render` script) before every render, and the
built-in engine runs the same script, which calls `prepare`. It writes, under assets/ (ignored
by git, the paths depend on the venv):

- assets/fonts/STIXTwoMath-Regular.ttf — STIX Two Math (OFL) from the `ziamath` wheel, the
  OpenType math font that assets/book.css gives MathML through @font-face;
- assets/pdf-fonts.yml — `metadata-files` of _quarto.yml: Noto Serif/Sans SC (OFL) of the
  `pylopdf-fonts-zh-cn` wheel as the PDF's CJKmainfont, by path (xeCJK via fontspec `Path=`).

A missing font costs the reader only that font: the render goes on and says so in one line.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

FONTS_DIR = Path("assets/fonts")
PDF_FONTS = Path("assets/pdf-fonts.yml")
MATH_FONT = "STIXTwoMath-Regular.ttf"


def math_font() -> Path | None:
    """STIX Two Math as the `ziamath` wheel ships it, or None (ziamath itself is not imported)."""
    spec = importlib.util.find_spec("ziamath")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "fonts" / MATH_FONT
    return path if path.is_file() else None


def cjk_fonts() -> tuple[Path, Path] | None:
    """(serif, sans) Noto SC fonts of the `pylopdf-fonts-zh-cn` wheel, or None."""
    try:
        import pylopdf_fonts_zh_cn as zh
    except ImportError:
        return None
    serif, sans = Path(zh.serif_path()), Path(zh.sans_path())
    return (serif, sans) if serif.is_file() and sans.is_file() else None


def tinytex_dir() -> Path | None:
    """Quarto's TinyTeX (`quarto install tinytex`), which installs missing LaTeX packages itself."""
    for d in (Path.home() / ".TinyTeX", Path.home() / "Library" / "TinyTeX"):
        if d.is_dir():
            return d
    return None


def kpsewhich(name: str) -> bool:
    """Whether TeX finds a file (False without a TeX installation)."""
    try:
        out = subprocess.run(["kpsewhich", name], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and bool(out.stdout.strip())


def pdf_fonts_yaml(fonts: tuple[Path, Path] | None) -> str:
    """The metadata file: xeCJK fonts by file name and folder, or nothing when there are none."""
    head = "# Written by _prerender.py (sgdlab.render.assets) before each render; do not edit.\n"
    if fonts is None:
        return head + "{}\n"
    serif, sans = fonts
    folder = serif.parent.as_posix().rstrip("/") + "/"
    return head + (
        "format:\n  pdf:\n"
        f"    CJKmainfont: {serif.name}\n"
        f"    CJKsansfont: {sans.name}\n"
        f"    CJKmonofont: {sans.name}\n"
        # raw LaTeX: as Markdown, the folder's underscores would reach fontspec as \_
        f'    CJKoptions: ["`Path={folder}`{{=latex}}", AutoFakeBold=2.5]\n'
    )


def prepare(root: Path) -> list[str]:
    """Write the font assets under root; return one line per font that could not be found."""
    notes = []
    font = math_font()
    if font is None:
        notes.append("note: no math font (the `ziamath` package is missing): equations in HTML use"
                     " the browser's fonts")
    else:
        dest = root / FONTS_DIR / MATH_FONT
        if not dest.is_file() or dest.stat().st_size != font.stat().st_size:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(font, dest)
    cjk = cjk_fonts()
    if cjk is None:
        notes.append("note: no CJK font (the `pylopdf-fonts-zh-cn` package is missing): Chinese text"
                     " is left out of the PDF")
    elif tinytex_dir() is None and shutil.which("kpsewhich") and not kpsewhich("xeCJK.sty"):
        cjk = None  # xeCJK missing would stop LaTeX: a PDF without the Chinese is better than none
        notes.append("note: LaTeX lacks xeCJK.sty (Debian: texlive-lang-cjk): Chinese text is left out"
                     " of the PDF")
    out = root / PDF_FONTS
    out.parent.mkdir(parents=True, exist_ok=True)
    text = pdf_fonts_yaml(cjk)
    if not out.is_file() or out.read_text(encoding="utf-8") != text:
        out.write_text(text, encoding="utf-8")
    return notes


def main() -> None:
    """`_prerender.py`: prepare the project in the working directory (Quarto runs it at the root):
    the fonts, the site's addresses (site.py), this Python's kernelspec, so that Quarto's kernels use
    a private socket (kernelspec.py), and the guard that keeps Quarto's `freeze` from showing stale
    outputs (freeze.py), which digests what the fonts and site steps wrote."""
    from ..kernelspec import ensure
    from .freeze import guard
    from .site import SiteError, write_override

    ensure()  # after a plain `pip install`, which cannot write it; `make` has done it already

    root = Path.cwd()
    try:
        write_override(root)
    except SiteError as e:
        sys.exit(f"error: {e}")
    for line in prepare(root):
        print(line)
    note = guard(root)
    if note:
        print(note)
