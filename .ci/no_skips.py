"""pytest plugin for .ci/run (loaded through PYTEST_PLUGINS, so CI runs the README's own test
command): a skipped browser test, reference (slow-marked) test or notebook test fails the run.

In CI every dependency is installed, so such a skip means a broken set-up, never an excuse. The
only skips left are the ones a test gives with a reason that names no missing dependency: the
README blocks marked `<!-- not run: ... -->`."""

from __future__ import annotations

import pytest

MUST_RUN_MARKERS = ("browser", "slow")
MUST_RUN_PATHS = ("tests/browser/", "tests/lessons/test_lessons_notebooks.py")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped:
        return
    path = item.nodeid.split("::", 1)[0]
    marked = [m for m in MUST_RUN_MARKERS if item.get_closest_marker(m)]
    if marked or path.startswith(MUST_RUN_PATHS):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"skipped in CI, where it must run ({', '.join(marked) or path}): {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A whole must-run file skipped at import (pytest.importorskip) fails too."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and report.nodeid.startswith(MUST_RUN_PATHS):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where it must run ({report.nodeid}): {report.longrepr}"
