"""Every lesson file is a notebook: jupytext reads its `# %%` cells, a Jupyter kernel runs them
top to bottom, headless, on the lessons' quick samples (MINICONTEXT_LESSONS_QUICK=1). A cell that
breaks fails here, so a notebook a learner opens cannot rot while the CLI keeps working."""

import os
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext", reason="the test extra installs jupytext")
nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient")

from lessons.__main__ import LESSON_MODULES, lesson_names  # noqa: E402
from lessons.common import CACHE_ENV, QUICK_ENV  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# One cell may embed hundreds of sentences on a loaded 2-core machine; a hung kernel still ends.
CELL_TIMEOUT_S = 600


def test_every_lesson_has_a_notebook_file():
    assert set(LESSON_MODULES) == set(lesson_names())
    for module in LESSON_MODULES.values():
        text = (REPO / "lessons" / f"{module}.py").read_text(encoding="utf-8")
        notebook = jupytext.reads(text, fmt="py:percent")
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert len(code) >= 4, module  # imports and definitions, then the lesson's steps
        assert any("RESULT = " in cell.source for cell in code), module


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """The kernel inherits the environment: quick samples, a fresh cache, this checkout first."""
    saved = {k: os.environ.get(k) for k in (QUICK_ENV, CACHE_ENV, "PYTHONPATH", "MPLBACKEND")}
    os.environ[QUICK_ENV] = "1"
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("cache"))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([saved["PYTHONPATH"]] if saved["PYTHONPATH"] else []))
    os.environ["MPLBACKEND"] = "Agg"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LESSON_MODULES))
def test_lesson_runs_as_a_notebook(name, kernel_env, tmp_path):
    module = LESSON_MODULES[name]
    notebook = jupytext.read(REPO / "lessons" / f"{module}.py", fmt="py:percent")
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    printed = "".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for out in cell.get("outputs", []) if out.get("output_type") == "stream")
    assert "wrote " in printed, f"{name}: the notebook wrote no picture"
    assert list((tmp_path / "lesson_output").glob("*.png")), name
