"""Every code example in README.md and docs/*.md runs, on the files the package ships.

- Each fenced ```python block is run in a fresh interpreter, in an empty folder.
- Each command the README presents as runnable (a `python -m ...` line in a ```bash block, or in
  inline code) is either run here (the cheap ones, checked for exit status 0) or listed in
  NOT_RUN with the reason, and the test fails on a command that is neither.
- A block that is deliberately not runnable carries `<!-- not run: REASON -->` on the line
  before its fence.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NOT_RUN_MARKER = re.compile(r"<!--\s*not run:\s*(?P<reason>\S.*?)\s*-->")
FENCE = re.compile(r"^```(?P<lang>\S*)[^\n]*\n(?P<body>.*?)^```\s*$", re.S | re.M)
INLINE_COMMAND = re.compile(r"`(python -m [^`]+)`")
SNIPPET_TIMEOUT_S = 600  # loading MiniLM and the ELMo fixture takes ~10 s; the machine may be busy

# Commands the README shows that this test does not run, each with the reason.
NOT_RUN = {
    "python -m pytest -q": "the test suite itself, which this test is part of",
    "python -m lessons <lesson> -h": "a placeholder for any lesson's name; the lessons' tests run their help",
    "python -m lessons all": "runs every lesson (minutes); tests/lessons/ runs each lesson",
    "python -m lessons all --out docs/img": "rewrites the docs' pictures and transcripts (minutes)",
    **{f"python -m lessons {name}": "a full lesson (seconds to minutes); tests/lessons/ runs every lesson"
       for name in ("static-vs-contextual", "elmo-layers", "attention", "similarity", "zero-shot", "wsd",
                    "layers", "compare")},
    "python -m lessons lab": "a server that runs until Ctrl-C; tests/lessons/test_lab_server.py starts it",
    "python -m minielmo.train": "an hour of training; tests/unit/test_elmo_train.py trains a tiny model",
    "python -m pytest -q tests/lessons": "the lessons' tests, which this suite includes",
    "python -m lessons attention --out /tmp/l": "a full lesson (about a minute); tests/lessons/ runs it",
    'python -m lessons attention --sentence "..." --pair "First." "Second."':
        "a placeholder sentence; tests/lessons/test_lessons_run.py runs --sentence and --pair",
    "python -m bench": "the full speed bench (tens of minutes)",
    "python -m bench --quick": "tests/unit/test_bench_quick.py runs it",
    "python -m bench.profile": "profiles both models (minutes)",
    "python -m bench.elmo_loop": "trains the shipped size for 40 steps (minutes); tests/unit/test_bench_quick.py runs --quick",
    "python -m bench.memory": "encodes 50,000 long texts (tens of minutes on 2 cores)",
    'python -m minibert verify "some text"': "needs the test extra; tests/unit/test_bert_verify.py runs it",
    "python -m minielmo.convert options.json weights.hdf5 OUT_DIR":
        "placeholders for the user's files; the ELMo weight tests convert the fixture",
    "python -m minibert encode --file texts.txt --out vectors.npy":
        "needs the user's texts.txt; tests/unit/test_cli.py runs encode on a file",
    "python -m minibert similarity --file texts.txt": "needs the user's texts.txt; tests/unit/test_cli.py runs it",
    "python -m minielmo.corpus --out corpus":
        "needs the train extra and two Debian packages; builds 4.3 M words (a minute)",
    "python -m minielmo.train --corpus corpus --out elmo_run --size small --tokens 4300000 --seed 0":
        "an hour of training; tests/unit/test_elmo_train.py trains a tiny model through the same code",
    "python -m minielmo.evaluate": "needs a training run's checkpoint and the corpus",
    "python -m minielmo.train --corpus corpus --out elmo_run --size small --epochs 10 --seed 0":
        "hours of training; tests/unit/test_elmo_train.py and test_training_runs.py train a tiny model through the same code",
    "python -m minielmo.evaluate --corpus corpus --run elmo_run":
        "needs the built corpus and a training run; tests/unit/test_ngram.py checks the baselines",
    "python -m minielmo.evaluate --text FILE --model NAME":
        "placeholders, and the shipped small has no LM head yet; tests/unit/test_minielmo_predict.py scores text with a trained head",
    'python -m minielmo predict "I deposited the money in the"':
        "the shipped small has no LM head yet; tests/unit/test_minielmo_predict.py runs predict on a trained tiny model",
}


def fenced_blocks(path: Path) -> list[tuple[str, str, str | None, int]]:
    """(language, code, not-run reason or None, line number) for every fenced block."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = NOT_RUN_MARKER.search(before)
        blocks.append((match["lang"], match["body"], marker["reason"] if marker else None, line))
    return blocks


def python_blocks() -> list:
    """The Python blocks to run: every one not marked `<!-- not run: REASON -->`."""
    return [pytest.param(code, id=f"{path.name}:{line}")
            for path in DOCUMENTS for lang, code, reason, line in fenced_blocks(path)
            if lang == "python" and reason is None]


def readme_commands() -> list[str]:
    """`python -m ...` commands of the README: lines of ```bash blocks and inline code."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = []
    for lang, code, reason, _ in fenced_blocks(REPO / "README.md"):
        if lang in ("bash", "sh", "shell") and reason is None:
            for line in code.splitlines():
                command = line.split("#", 1)[0].strip()
                # "pip install ... && python -m x": the set-up part is CI's job (.ci/run runs it verbatim).
                command = command.rsplit("&&", 1)[-1].strip()
                if command.startswith("python -m"):
                    commands.append(command)
    commands += INLINE_COMMAND.findall(text)
    return list(dict.fromkeys(commands))


def run(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, input=stdin,
                          timeout=SNIPPET_TIMEOUT_S)


def test_the_documents_have_python_examples():
    assert len(python_blocks()) >= 4


def test_blocks_marked_not_run_say_why():
    marked = [(path.name, line, reason) for path in DOCUMENTS for _, _, reason, line in fenced_blocks(path)
              if reason is not None]
    assert all(len(reason.split()) >= 3 for _, _, reason in marked), marked  # a reason, not a bare tag


@pytest.mark.parametrize("code", python_blocks())
def test_python_block_runs(code, tmp_path):
    result = run([sys.executable, "-c", code], tmp_path)
    assert result.returncode == 0, f"this block failed:\n{code}\n--- stderr ---\n{result.stderr[-3000:]}"


def test_every_readme_command_is_run_here_or_has_a_reason():
    commands = readme_commands()
    assert "python -m minibert similarity" in commands  # the main job is found
    unaccounted = [c for c in commands if c not in NOT_RUN and c not in RUN]
    assert unaccounted == [], f"README commands neither run by this test nor listed in NOT_RUN: {unaccounted}"


# The cheap commands, run as the README shows them (stdin for the ones that read it).
RUN = {
    "python -m minibert similarity": None,
    'python -m minielmo "The cat sat ."': None,
    "python -m minielmo --help": None,
    "python -m minibert --help": None,
    "python -m minibert encode --help": None,
    "python -m lessons -h": None,
    'echo "one sentence per line" | python -m minielmo -': "one sentence per line\n",
}


@pytest.mark.parametrize("command", list(RUN))
def test_readme_command_runs(command, tmp_path):
    stdin = RUN[command]
    shell_command = command.split("|", 1)[-1].strip() if stdin is not None else command
    args = [sys.executable, *re.findall(r'"[^"]*"|\S+', shell_command)[1:]]
    args = [a[1:-1] if a.startswith('"') else a for a in args]
    result = run(args, tmp_path, stdin)
    assert result.returncode == 0, f"{command} failed:\n{result.stderr[-3000:]}"
    assert result.stdout.strip()


# ----- CI runs the README's quick start, and refuses skipped must-run tests ------------------------

def _readme_quick_start() -> str:
    return next(code for lang, code, _, _ in fenced_blocks(REPO / "README.md") if lang == "bash" and "pytest" in code)


def test_ci_runs_the_readme_install_and_test_commands():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    quick_start = _readme_quick_start()
    for line in quick_start.splitlines():
        line = line.strip()
        if line.startswith("pip install") or line.startswith("python -m pytest"):
            assert line.replace("pip install ", "pip install -q ") in ci or line in ci, line
    assert "python -m pytest -q" in ci and "PYTEST_PLUGINS=no_skips" in ci


def test_ci_plugin_fails_a_skipped_browser_or_reference_test(tmp_path):
    (tmp_path / "test_probe.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.slow\ndef test_reference():\n    pytest.skip('transformers is not installed')\n\n"
        "def test_marked_not_run():\n    pytest.skip('marked not run: a placeholder')\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO / ".ci"), "PYTEST_PLUGINS": "no_skips"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_probe.py")],
                          capture_output=True, text=True, env=env, timeout=SNIPPET_TIMEOUT_S)
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 skipped" in done.stdout and "skipped in CI, where it must run (slow)" in done.stdout


# ----- the lessons' numbers in the docs are the transcripts' -------------------------------------

LESSON_SECTIONS = re.compile(r"^## 1\. .*?(?=^## 9\. )", re.S | re.M)
DECIMAL = re.compile(r"(?<![\w.])\d[\d,]*\.\d+(?![\w.]\d)")


def test_lesson_docs_quote_only_numbers_the_lessons_printed():
    """docs/lessons.md's lesson sections quote no decimal that is not in a transcript that
    `python -m lessons all --out docs/img` wrote: a rerun after a model changes cannot leave
    a hand-copied number behind unnoticed."""
    transcripts = sorted((REPO / "docs" / "img").glob("*.txt"))
    from lessons.__main__ import lesson_names

    assert {path.stem for path in transcripts} >= set(lesson_names()), "rerun: python -m lessons all --out docs/img"
    printed = "\n".join(path.read_text(encoding="utf-8") for path in transcripts)
    sections = LESSON_SECTIONS.search((REPO / "docs" / "lessons.md").read_text(encoding="utf-8")).group(0)
    quoted = DECIMAL.findall(sections)
    assert [number for number in quoted if number not in printed] == []


def test_lesson_docs_show_every_picture_the_lessons_write():
    shown = set(re.findall(r"\(img/([\w.-]+\.png)\)", (REPO / "docs" / "lessons.md").read_text(encoding="utf-8")))
    written = {line.rsplit("/", 1)[-1] for path in (REPO / "docs" / "img").glob("*.txt")
               for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("wrote ")
               and line.endswith(".png")}
    assert written and written <= shown, sorted(written - shown)
