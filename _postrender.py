"""Quarto's `post-render` script (see _quarto.yml): each edition's book copied into the site, _book/.

A full render empties its own output-dir before anything else runs, so the English render deletes
_book/zh/; the Chinese edition's own output-dir is _book-zh/, and after either render this puts a copy
of it back at _book/zh/ (sgdlab/render/editions.py). Quarto runs it with the Python of QUARTO_PYTHON.
"""

from pathlib import Path

try:
    from sgdlab.render.editions import assemble
except ImportError:  # another Python than the project's: the editions stay in their own folders
    print("note: sgdlab is not installed in this Python (set QUARTO_PYTHON=.venv/bin/python):"
          " _book-zh/ not copied to _book/zh/")
else:
    for line in assemble(Path.cwd()):
        print(line)
