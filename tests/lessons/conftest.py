"""Fixtures for the lessons' tests: every lesson runs once per test session, through the same
entry point as `python -m lessons all`, and the tests read the numbers it returns and the text
it prints."""

import contextlib
import io

import pytest
import torch


@pytest.fixture(scope="session")
def lesson_out(tmp_path_factory):
    return tmp_path_factory.mktemp("lesson_output")


@pytest.fixture(scope="session")
def lesson_run(lesson_out, tmp_path_factory):
    from lessons.__main__ import lesson_names, run_lessons
    from lessons.common import CACHE_ENV

    # A cache of this session's own: the lessons compute their measures here (layers), then
    # read them back (compare), as a first run on a learner's machine does.
    mp = pytest.MonkeyPatch()
    mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("cache")))

    # One intra-op thread, as the shared conftest's torch_single_thread does for other areas: on
    # the shared 2-core machines the second thread mostly waits (see tests/conftest.py). The
    # lessons' numbers do not depend on it beyond float32 noise; the tests check directions.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            results = run_lessons(lesson_names(), lesson_out)
    finally:
        torch.set_num_threads(threads)
        mp.undo()
    return results, printed.getvalue()


@pytest.fixture(scope="session")
def lesson_results(lesson_run):
    return lesson_run[0]


@pytest.fixture(scope="session")
def lesson_printed(lesson_run):
    """Everything the lessons printed, split by lesson name."""
    text = lesson_run[1]
    sections = {}
    for chunk in text.split("\nlesson: ")[1:]:
        name, _, body = chunk.partition("\n")
        sections[name] = body
    return sections
