"""Fixtures for the lessons' tests: every lesson runs once per test session, through the same
entry point as `python -m lessons all`, and the tests read the numbers it returns."""

import pytest


@pytest.fixture(scope="session")
def lesson_out(tmp_path_factory):
    return tmp_path_factory.mktemp("lesson_output")


@pytest.fixture(scope="session")
def lesson_results(lesson_out):
    from lessons import LESSONS
    from lessons.__main__ import run_lessons

    return run_lessons(list(LESSONS), lesson_out)
