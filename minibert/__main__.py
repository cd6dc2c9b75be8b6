"""Command line: `python -m minibert similarity ...` and `python -m minibert verify ...`.

similarity  embeds texts with a sentence-transformers BERT (all-MiniLM-L6-v2 by default, from the
            packaged weights) and prints their cosine similarity matrix. With no texts it uses the
            four "bank" sentences, where one word takes three meanings.
verify      runs minibert and transformers side by side and prints max|diff| per layer
            (needs the test extra; see minibert/verify.py).
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_MODEL = "all-MiniLM-L6-v2"
SEED_SENTENCES = [
    "The bank approved my loan application.",
    "We sat on the bank of the river.",
    "I need to bank this money quickly.",
    "The investment bank offers great returns.",
]
LABEL_WIDTH = 44  # longer texts are shortened in the printed matrix


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m minibert", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="{similarity,verify}")
    for name, help_text in (
        ("similarity", "print the cosine similarity matrix of the texts (default: the seed sentences)"),
        ("verify", "compare minibert with transformers layer by layer on the texts (needs the test extra)"),
    ):
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("texts", nargs="*", metavar="TEXT", help="texts to compare (default: the seed sentences)")
        command.add_argument(
            "--model", default=DEFAULT_MODEL, help=f"model name or local directory (default: {DEFAULT_MODEL})"
        )
    return parser


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


def similarity(texts: list[str], model: str) -> int:
    from minibert.sentence import SentenceEncoder

    encoder = SentenceEncoder.from_pretrained(model)
    # Unit vectors whatever modules.json says, so the dot product is the cosine similarity.
    vectors = encoder.encode(texts, normalize=True)  # (N, D)
    matrix = vectors @ vectors.T  # (N, D) @ (D, N) -> (N, N)
    print(f"Cosine similarity ({model}, {len(texts)} texts):\n")
    print(format_matrix(texts, matrix))
    return 0


def verify(texts: list[str], model: str) -> int:
    from minibert.verify import run_verify

    return run_verify(texts, model)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    texts = args.texts or SEED_SENTENCES
    try:
        if args.command == "similarity":
            return similarity(texts, args.model)
        return verify(texts, args.model)
    except (FileNotFoundError, ValueError) as error:
        # Missing weights, a directory that is not a model, a corrupted file: say what and where,
        # without a traceback.
        print(f"python -m minibert {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
