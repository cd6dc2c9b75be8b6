"""Command line: `python -m minibert similarity|encode|verify|fill-mask ...`.

similarity  embeds texts with a sentence-transformers BERT (all-MiniLM-L6-v2 by default, from the
            packaged weights) and prints their cosine similarity matrix. With no texts it uses the
            four "bank" sentences, where one word takes three meanings.
encode      embeds texts (one per line of --file, or given as arguments) and saves the vectors
            as a .npy array, row i for text i, with a progress bar.
verify      runs minibert and transformers side by side and prints max|diff| per layer
            (needs the test extra; see minibert/verify.py).
fill-mask   prints a masked-LM BERT's top word pieces for each [MASK] in a text, with their
            probabilities, and the text filled in (minicontext-bert-small by default).

Texts come from the command line or from --file (one text per line; '-' reads stdin).
similarity and verify skip blank lines; encode keeps every line, so row i of the array is line i.
Every error is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DEFAULT_MODEL = "all-MiniLM-L6-v2"
SEED_SENTENCES = [
    "The bank approved my loan application.",
    "We sat on the bank of the river.",
    "I need to bank this money quickly.",
    "The investment bank offers great returns.",
]
LABEL_WIDTH = 44  # longer texts are shortened in the printed matrix
PROG = "python -m minibert"


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the message and where to find help)."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="{similarity,encode,verify,fill-mask}")
    for name, help_text in (
        ("similarity", "print the cosine similarity matrix of the texts (default: the seed sentences)"),
        ("encode", "save the texts' sentence vectors to a .npy file (N, D), row i for text i"),
        ("verify", "compare minibert with transformers layer by layer on the texts (needs the test extra)"),
    ):
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("texts", nargs="*", metavar="TEXT", help="texts (default: the seed sentences)")
        blank_rule = ("every line is a text, blank ones included, so row i is line i" if name == "encode"
                      else "blank lines (empty or only spaces) are skipped")
        command.add_argument("--file", metavar="FILE",
                             help=f"read the texts from FILE, one per line (UTF-8); '-' reads stdin; {blank_rule}")
        command.add_argument(
            "--model", default=DEFAULT_MODEL, help=f"model name or local directory (default: {DEFAULT_MODEL})"
        )
        if name == "encode":
            command.add_argument("--out", required=True, metavar="VECTORS.npy", help="where to write the array")
            command.add_argument("--batch-size", type=int, default=32, help="texts per model call (default 32)")
            command.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_fill_mask_parser(commands)
    return parser


# ----- fill-mask: a self-contained subcommand ------------------------------------------------------

def add_fill_mask_parser(commands) -> None:
    from minibert.fill_mask import DEFAULT_MODEL as MLM_MODEL

    help_text = "print the top word pieces for each [MASK] in TEXT, and the text filled in"
    command = commands.add_parser("fill-mask", help=help_text, description=help_text)
    command.add_argument("text", metavar="TEXT", help='e.g. "We sat on the [MASK] of the river ."')
    command.add_argument("--top-k", type=int, default=5, help="pieces shown per [MASK] (default 5)")
    command.add_argument("--model", default=MLM_MODEL,
                         help=f"masked-LM model name or local directory (default: {MLM_MODEL})")


def fill_mask_command(args) -> int:
    from minibert.fill_mask import fill_mask, format_predictions

    print(format_predictions(args.text, fill_mask(args.text, top_k=args.top_k, model=args.model)))
    return 0


def format_matrix(texts: list[str], similarity) -> str:
    """The matrix with numbered rows labelled by (shortened) text and numbered columns."""
    labels = [_shorten(text) for text in texts]
    width = max(len(label) for label in labels) + 6
    header = " " * width + "".join(f"{f'[{j + 1}]':>8}" for j in range(len(texts)))
    rows = [
        f"{f'[{i + 1}]':<5} {label:<{width - 6}}" + "".join(f"{value:>8.3f}" for value in similarity[i])
        for i, label in enumerate(labels)
    ]
    return "\n".join([header, *rows])


def _shorten(text: str) -> str:
    text = " ".join(text.split()) or repr(text)  # one line; show empty/blank texts as their repr
    return text if len(text) <= LABEL_WIDTH else text[: LABEL_WIDTH - 1] + "…"


class _Lines:
    """The lines of a UTF-8 text file, read lazily each time it is iterated; len() counts them,
    so encode's progress bar can show an ETA without holding every text in memory."""

    def __init__(self, path: Path):
        self.path = path
        try:
            with _open_text(path) as file:
                self.count = sum(1 for _ in file)
        except UnicodeDecodeError as error:
            raise UsageError(f"--file {path}: not UTF-8 text ({error})") from None

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        with _open_text(self.path) as file:
            for line in file:
                yield line.rstrip("\r\n")


def _open_text(path: Path):
    if path.is_dir():
        raise UsageError(f"--file {path}: is a directory, not a text file")
    return open(path, encoding="utf-8", newline="")


def read_texts(args) -> list[str] | _Lines:
    if args.file is not None and args.texts:
        raise UsageError("give texts as arguments or with --file, not both")
    if args.file == "-":
        try:
            return [line.rstrip("\r\n") for line in sys.stdin]
        except UnicodeDecodeError as error:
            raise UsageError(f"--file -: stdin is not UTF-8 text ({error})") from None
    if args.file is not None:
        return _Lines(Path(args.file))
    return args.texts or SEED_SENTENCES


def similarity(texts, model: str) -> int:
    from minibert.sentence import SentenceEncoder

    texts = list(texts)
    if not texts:
        raise UsageError("no texts to compare (the file is empty or has only blank lines)")
    encoder = SentenceEncoder.from_pretrained(model)
    # Unit vectors whatever modules.json says, so the dot product is the cosine similarity.
    vectors = encoder.encode(texts, normalize_embeddings=True)  # (N, D)
    matrix = vectors @ vectors.T  # (N, D) @ (D, N) -> (N, N)
    print(f"Cosine similarity ({model}, {len(texts)} texts):\n")
    print(format_matrix(texts, matrix))
    return 0


def encode(texts, model: str, out: str, batch_size: int, progress: bool) -> int:
    import numpy as np

    from minibert.sentence import SentenceEncoder

    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    with open(out, "wb") as file:  # fails now, not after the encoding, if OUT cannot be written
        encoder = SentenceEncoder.from_pretrained(model)
        vectors = encoder.encode(texts, batch_size=batch_size, show_progress_bar=progress)  # (N, D)
        np.save(file, vectors)
    print(f"wrote {out}: {vectors.shape[0]} vectors of {vectors.shape[1]} {vectors.dtype} ({model})")
    return 0


def verify(texts, model: str) -> int:
    from minibert.verify import run_verify

    return run_verify(list(texts), model)


def nonblank(texts) -> list[str]:
    """The texts that are not empty or only whitespace: for similarity and verify, a blank line in
    --file is not a text (--help says so). Texts typed as arguments are kept as given."""
    return [text for text in texts if text.strip()]


def main(argv: list[str] | None = None) -> int:
    command = "python -m minibert"
    try:
        args = build_parser().parse_args(argv)
        command = f"{PROG} {args.command}"
        if args.command == "fill-mask":
            return fill_mask_command(args)
        texts = read_texts(args)
        if args.file is not None and args.command != "encode":
            texts = nonblank(texts)
        if args.command == "similarity":
            return similarity(texts, args.model)
        if args.command == "encode":
            return encode(texts, args.model, args.out, args.batch_size, not args.no_progress)
        return verify(texts, args.model)
    except ModuleNotFoundError as error:
        message = f"{error} (verify needs the test extra: pip install -e \".[test]\")"
    except (UsageError, FileNotFoundError, ValueError, TypeError, OSError) as error:
        # Missing weights, a directory that is not a model, a corrupted file, bad input, an
        # unreadable or unwritable path: say what and where, without a traceback.
        message = str(error)
    except KeyboardInterrupt:
        message = "interrupted"
    except Exception as error:  # anything else is still one line, with its type for a bug report
        message = f"{type(error).__name__}: {error}"
    print(f"{command}: error: {one_line(message)}", file=sys.stderr)
    return 2


def one_line(message: str) -> str:
    """Multi-line messages (the list of places resolve() looked at) joined into one line."""
    lines = [re.sub(r"^\s*- ", "", line).strip() for line in message.splitlines() if line.strip()]
    joined = ""
    for line in lines:
        joined += line if not joined else (" " if joined.endswith(":") else "; ") + line
    return joined


if __name__ == "__main__":
    sys.exit(main())
