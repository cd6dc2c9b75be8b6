"""Bad input gets a clear one-line message and exit status 2, never a traceback."""

import re
import subprocess
import sys

import pytest

from lessons import plots
from lessons.__main__ import main
from lessons.common import LessonError, find_word, prepare_out


def _fails(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def _usage_error(capsys, argv, *needles):
    """argparse's own errors: one line on stderr, 'python -m lessons...: error: ...', exit status 2."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("python -m lessons") and "error: " in err and "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def test_unknown_lesson(capsys, tmp_path):
    _usage_error(capsys, ["no-such-lesson", "--out", str(tmp_path)], "invalid choice: 'no-such-lesson'",
                 "static-vs-contextual")


def test_unknown_lesson_in_a_real_process(tmp_path):
    done = subprocess.run([sys.executable, "-m", "lessons", "nope", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "invalid choice: 'nope'" in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1


def test_output_folder_under_a_file(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    _fails(capsys, ["similarity", "--out", str(blocker / "sub")], "cannot write to output folder")


def test_output_folder_is_a_file(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    _fails(capsys, ["similarity", "--out", str(blocker)], "is not a folder")


def test_output_folder_not_writable(tmp_path):
    with pytest.raises(LessonError, match="cannot write to output folder"):
        prepare_out("/proc/lessons-cannot-write-here")


def test_word_not_in_sentence(capsys, tmp_path):
    _fails(capsys, ["static-vs-contextual", "--out", str(tmp_path), "--word", "bank",
                    "--sentence", "The bank is closed.", "--sentence", "Nothing to see here."],
           "'bank' does not occur in the sentence 'Nothing to see here.'")


def test_word_without_prepared_sentences(capsys, tmp_path):
    _fails(capsys, ["static-vs-contextual", "--out", str(tmp_path), "--word", "zebra"],
           "no prepared sentences for 'zebra'")


def test_elmo_word_without_prepared_sentences(capsys, tmp_path):
    _fails(capsys, ["elmo-layers", "--out", str(tmp_path), "--word", "zebra"], "no prepared sentences")


def test_option_the_lesson_does_not_take(capsys, tmp_path):
    _usage_error(capsys, ["similarity", "--out", str(tmp_path), "--word", "bank"], "unrecognized arguments: --word")


def test_options_with_all(capsys, tmp_path):
    _usage_error(capsys, ["all", "--out", str(tmp_path), "--query", "x"], "unrecognized arguments: --query")


def test_every_lesson_has_its_own_help_with_defaults(capsys):
    from lessons.__main__ import lesson_names

    for name in lesson_names():
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0
        shown = capsys.readouterr().out
        # one block per option: its line, then the indented lines of its help text
        blocks = re.split(r"^  (?=-)", shown.split("options:", 1)[1], flags=re.M)[1:]
        assert any(block.startswith("--out") for block in blocks), name
        for block in blocks:
            if not block.startswith("-h"):
                assert "default" in block, (name, block)


def test_bad_option_values_are_one_line(capsys, tmp_path):
    _usage_error(capsys, ["attention", "--out", str(tmp_path), "--layer", "x"], "invalid int value: 'x'")


def test_sense_labels_need_one_per_sentence(capsys, tmp_path):
    _fails(capsys, ["static-vs-contextual", "--out", str(tmp_path), "--word", "bank", "--sentence", "A bank.",
                    "--sentence", "The bank.", "--sense", "money"], "one --sense per --sentence")


def test_zero_shot_labels_need_two(capsys, tmp_path):
    _fails(capsys, ["zero-shot", "--out", str(tmp_path), "--text", "A goal.", "--labels", "sport"],
           "--labels needs two or more")


def test_attention_head_out_of_range(capsys, tmp_path):
    _fails(capsys, ["attention", "--out", str(tmp_path), "--head", "13"], "--head 13 is out of range")


def test_empty_query(capsys, tmp_path):
    _fails(capsys, ["similarity", "--out", str(tmp_path), "--query", "  "], "--query is empty")


def test_find_word_is_whole_word_and_case_insensitive():
    assert find_word("Banking at the Bank.", "bank") == (15, 19)
    with pytest.raises(LessonError, match="does not occur"):
        find_word("Banking is fun.", "bank")


def test_without_matplotlib_numbers_and_a_hint(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "pyplot", lambda: None)
    assert main(["similarity", "--out", str(tmp_path), "--query", "river"]) == 0
    printed = capsys.readouterr().out
    assert plots.VIZ_HINT in printed and 'pip install -e ".[viz]"' in printed
    assert "Cosine similarity" in printed
    assert not list(tmp_path.glob("*.png"))
