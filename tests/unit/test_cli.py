"""`python -m minibert`: the similarity main job, verify dispatch, and clear errors."""

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minibert.verify
from minibert.__main__ import SEED_SENTENCES, format_matrix, main

pytestmark = pytest.mark.usefixtures("torch_single_thread")

# The printed matrix has 3 decimals, so it can be off from the reference by half a unit in the
# last place (5e-4), plus the 1e-5 float32 bound between minibert and sentence-transformers.
PRINTED_ATOL = 5e-4 + 1e-5
# Saved vectors against SentenceEncoder.encode in this process: the same float32 computation,
# batched differently (measured max|diff| ~1e-7; 1e-5 is the bound against sentence-transformers).
SENTENCE_ATOL = 1e-5
REPO = Path(__file__).resolve().parents[2]


def parse_matrix(output: str) -> np.ndarray:
    rows = [line for line in output.splitlines() if re.match(r"\[\d+\]", line)]
    return np.array([[float(v) for v in row.split()[-len(rows) :]] for row in rows])


def test_main_job_runs_as_a_module_without_reference_libraries():
    """The README's command, in a fresh interpreter; `-X importtime` lists every module imported,
    which shows that the library never pulls in transformers or sentence-transformers."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "minibert", "similarity"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert parse_matrix(result.stdout).shape == (4, 4)
    for sentence in SEED_SENTENCES:
        assert sentence in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert {"torch", "tokenizers", "minibert.sentence"} <= imported  # the listing was parsed
    assert not imported & {"transformers", "sentence_transformers"}


def test_similarity_matches_sentence_transformers(capsys, minilm_dir):
    from sentence_transformers import SentenceTransformer

    assert main(["similarity"]) == 0
    printed = parse_matrix(capsys.readouterr().out)
    reference = SentenceTransformer(str(minilm_dir), device="cpu").encode(SEED_SENTENCES)
    np.testing.assert_allclose(printed, reference @ reference.T, rtol=0, atol=PRINTED_ATOL)


def test_similarity_on_given_texts_with_model_option(capsys, minilm_dir):
    assert main(["similarity", "--model", str(minilm_dir), "a cat", "a kitten", ""]) == 0
    printed = parse_matrix(capsys.readouterr().out)
    assert printed.shape == (3, 3)
    np.testing.assert_allclose(np.diag(printed), 1.0, rtol=0, atol=PRINTED_ATOL)
    assert printed[0, 1] > printed[0, 2]  # cat ~ kitten more than cat ~ empty text


def test_format_matrix_shortens_long_and_blank_texts():
    text = format_matrix(["x" * 100, "   "], np.eye(2))
    assert "x" * 43 + "…" in text and "x" * 44 not in text
    assert "'   '" in text  # a blank text is shown as its repr, so the row is not unlabelled


def test_verify_dispatches_to_run_verify(monkeypatch):
    calls = []
    monkeypatch.setattr(minibert.verify, "run_verify", lambda texts, name: calls.append((texts, name)) or 7)
    assert main(["verify", "one text", "two", "--model", "some-dir"]) == 7
    assert main(["verify"]) == 7
    assert calls == [(["one text", "two"], "some-dir"), (SEED_SENTENCES, "all-MiniLM-L6-v2")]


def test_missing_weights_is_a_message_not_a_traceback(capsys, tmp_path):
    assert main(["similarity", "--model", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "could not find model" in err and "Looked at" in err and "Traceback" not in err
    assert err.count("\n") == 1  # resolve()'s list of places, joined into one line
    assert main(["similarity", "--model", str(tmp_path)]) == 2
    assert "has no model.safetensors" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        ([], "the following arguments are required"),
        (["bogus"], "invalid choice"),
        (["similarity", "--nope"], "unrecognized"),
        (["encode", "x"], "the following arguments are required: --out"),
        (["similarity", "a", "--file", "-"], "give texts as arguments or with --file, not both"),
    ],
)
def test_bad_usage_is_one_line_and_status_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m minibert") and message in err
    assert err.count("\n") == 1


# ----- texts from a file or stdin, vectors to a .npy file ------------------------------------------

def test_similarity_reads_one_text_per_line_from_a_file_or_stdin(capsys, tmp_path, monkeypatch):
    texts = ["a cat", "a kitten", "", "stock markets", "  \t "]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert main(["similarity", "--file", str(tmp_path / "texts.txt")]) == 0
    from_file = capsys.readouterr().out
    # The blank lines are skipped, as --help says: three texts, and no '' row.
    assert "3 texts" in from_file and parse_matrix(from_file).shape == (3, 3) and "''" not in from_file
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(texts) + "\n"))
    assert main(["similarity", "--file", "-"]) == 0
    assert capsys.readouterr().out == from_file


def test_blank_line_rule_is_stated_in_help(capsys):
    for command, rule in (("similarity", "blank lines (empty or only spaces) are skipped"),
                          ("encode", "blank ones included, so row i is line i")):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert rule in " ".join(capsys.readouterr().out.split())


def test_a_file_of_blank_lines_is_one_line_error(capsys, tmp_path):
    (tmp_path / "blank.txt").write_text("\n  \n\t\n", encoding="utf-8")
    assert main(["similarity", "--file", str(tmp_path / "blank.txt")]) == 2
    err = capsys.readouterr().err
    assert "no texts to compare (the file is empty or has only blank lines)" in err and err.count("\n") == 1


def test_encode_writes_one_row_per_line_in_order(capsys, tmp_path):
    from minibert import SentenceEncoder

    texts = ["first line", "", "Héllo wörld", "word " * 300]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "vectors.npy"
    assert main(["encode", "--file", str(tmp_path / "texts.txt"), "--out", str(out), "--batch-size", "2"]) == 0
    captured = capsys.readouterr()
    assert f"wrote {out}: 4 vectors of 384 float32" in captured.out
    assert "4/4 texts" in captured.err and "ETA" in captured.err  # the progress bar
    vectors = np.load(out)
    expected = SentenceEncoder.from_pretrained("all-MiniLM-L6-v2").encode(texts)
    np.testing.assert_allclose(vectors, expected, rtol=0, atol=SENTENCE_ATOL)


@pytest.mark.parametrize("case", ["missing file", "directory", "not utf-8", "unwritable out", "bad batch size"])
def test_file_errors_are_one_line_and_status_2(capsys, tmp_path, case):
    good = tmp_path / "texts.txt"
    good.write_text("a\n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    argv, message = {
        "missing file": (["similarity", "--file", str(tmp_path / "none.txt")], "No such file or directory"),
        "directory": (["similarity", "--file", str(tmp_path)], "is a directory, not a text file"),
        "not utf-8": (["similarity", "--file", str(tmp_path / "latin1.txt")], "latin1.txt: not UTF-8 text"),
        "unwritable out": (["encode", "--file", str(good), "--out", str(tmp_path / "no" / "v.npy")], "No such file or directory"),
        "bad batch size": (["encode", "--file", str(good), "--out", str(tmp_path / "v.npy"), "--batch-size", "0"],
                           "--batch-size must be at least 1"),
    }[case]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_corrupt_tokenizer_json_is_one_line_in_the_cli(capsys, tmp_path, minilm_dir):
    for item in minilm_dir.iterdir():
        if item.name != "tokenizer.json":
            (tmp_path / item.name).symlink_to(item)
    (tmp_path / "tokenizer.json").write_text('{"truncated": ')
    assert main(["similarity", "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "tokenizer.json: not a tokenizer.json the tokenizers library can read" in err and err.count("\n") == 1


# Non-UTF-8 bytes on a POSIX command line reach Python as lone surrogates (surrogateescape).
NOT_UTF8_ARGUMENT = "caf\xe9".encode("latin-1")


@pytest.mark.parametrize("argv", [[b"minibert", b"similarity", NOT_UTF8_ARGUMENT, b"ok"],
                                  [b"lessons", b"similarity", b"--query", NOT_UTF8_ARGUMENT]],
                         ids=["minibert", "lessons"])
def test_non_utf8_command_line_bytes_are_a_clear_error_not_a_traceback(argv, tmp_path):
    result = subprocess.run([sys.executable.encode(), b"-m", *argv], capture_output=True, timeout=300,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2, err[-2000:]
    assert "Traceback" not in err
    assert "lone surrogate '\\udce9' at character 3" in err

