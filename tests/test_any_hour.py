"""The scheduler's tests pass whatever the hour of the system clock.

APScheduler reads the system clock, which the other tests cannot move; libfaketime
(Debian's `faketime`, which .ci/run installs) can, for a child pytest. A test that
passed only in some hours of the day once kept CI from landing work for seven of them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# Four whole pytest runs under faketime: `make test` has them, `make check` does not.
pytestmark = pytest.mark.slow

# Both ends of the hours the beyond-grace case once failed in (07:00 to 14:00 UTC), and
# two outside them.
HOURS = ["00:30", "07:30", "13:59", "20:00"]


@pytest.mark.skipif(shutil.which("faketime") is None and not os.environ.get("CI"),
                    reason="needs libfaketime (apt-get install faketime)")
@pytest.mark.parametrize("hour", HOURS)
def test_schedule_tests_pass_at_any_hour(hour: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env.pop("DIGEST_TEST_POSTGRES_URL", None)  # the hour matters, not the database
    result = subprocess.run(
        ["faketime", f"2026-12-05 {hour}:00", sys.executable, "-m", "pytest", "-q",
         "-p", "no:cacheprovider", "-p", "no:randomly", "tests/test_schedule.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"at {hour} UTC:\n{result.stdout[-3000:]}"
