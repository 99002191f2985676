"""The suite runs without the results cache: a test that compares two runs must compare two computations.

tests/test_cache.py turns it on, each test in a fresh directory.
"""

import os

os.environ["SGDLAB_NO_CACHE"] = "1"  # inherited by the CLI subprocesses and the report's kernels too
