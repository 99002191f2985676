"""Quarto's `pre-render` script (see _quarto.yml): fonts from the project's packages, under assets/,
and the guard that discards frozen chapter outputs when src/sgdlab or a library changed (render/freeze.py).

Quarto runs it with the Python of QUARTO_PYTHON (the project's venv); the built-in engine runs it too.
"""

import shutil

try:
    from sgdlab.render.assets import main
except ImportError:  # another Python than the project's: no fonts, and no frozen output can be trusted
    shutil.rmtree("_freeze", ignore_errors=True)
    print("note: sgdlab is not installed in this Python (set QUARTO_PYTHON=.venv/bin/python):"
          " rendering without the project's math and CJK fonts, every chapter executed")
else:
    main()
