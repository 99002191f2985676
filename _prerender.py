"""Quarto's `pre-render` script (see _quarto.yml): fonts from the project's packages, under assets/.

Quarto runs it with the Python of QUARTO_PYTHON (the project's venv); the built-in engine runs it too.
"""

try:
    from sgdlab.render.assets import main
except ImportError:  # another Python than the project's: render without the fonts, and say so
    print("note: sgdlab is not installed in this Python (set QUARTO_PYTHON=.venv/bin/python):"
          " rendering without the project's math and CJK fonts")
else:
    main()
