"""Runs the Python tests for CTest: pytest's exit status 5 ("no tests were
collected") is a failure here, not a pass."""
import os
import sys

import pytest

here = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
rc = pytest.main(["-q", "-p", "no:cacheprovider", "-rs", here] + args)
if rc == pytest.ExitCode.NO_TESTS_COLLECTED:
    print("run_pytest: no tests were collected: failing", file=sys.stderr)
    sys.exit(1)
sys.exit(int(rc))
