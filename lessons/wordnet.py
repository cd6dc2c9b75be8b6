"""WordNet 3.0 (Miller 1995; Fellbaum 1998) read straight from Debian's `wordnet-base` files.

What the lessons take from it:
- synsets: lexicographer file, lemmas, gloss (definition) and example sentences;
- sense order: `index.noun` / `index.verb` list a lemma's synsets most frequent first, which is
  the "first sense" baseline of word-sense disambiguation;
- the 45 lexicographer-file names, from the `lexnames(5WN)` man page the same package ships
  (the package has no `lexnames` data file).

File formats: wndb(5WN). A data line is
`offset lex_filenum ss_type w_cnt word lex_id ... p_cnt ptrs ... | gloss`, with `w_cnt` in
hexadecimal; the gloss is the definition, then its examples in double quotes.
Parsed once per process (about 2 s) and kept in memory.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

INSTALL_HINT = "sudo apt-get install wordnet-base"
SEARCH_PATH = ("/usr/share/wordnet", "/usr/local/share/wordnet", "/usr/share/wordnet/dict")
LEXNAMES_MAN = "/usr/share/man/man5/lexnames.5WN.gz"
POS_FILES = {"n": "noun", "v": "verb"}


class WordNetMissing(RuntimeError):
    """The WordNet database files are not installed."""


@dataclass(frozen=True)
class Synset:
    offset: int
    pos: str  # "n" or "v"
    lexfile: int  # lexicographer file number (names: lexnames())
    lemmas: tuple[str, ...]  # lower-case, underscores as in the files ("river_bank")
    definition: str
    examples: tuple[str, ...]


def wordnet_dir() -> Path:
    """The folder holding data.noun: $WNSEARCHDIR if set, else Debian's locations."""
    candidates = [os.environ["WNSEARCHDIR"]] if os.environ.get("WNSEARCHDIR") else []
    for folder in [*candidates, *SEARCH_PATH]:
        if (Path(folder) / "data.noun").is_file():
            return Path(folder)
    raise WordNetMissing(f"WordNet 3.0 is not installed (no data.noun in {', '.join(SEARCH_PATH)}); "
                         f"install it with: {INSTALL_HINT}")


def _parse_gloss(gloss: str) -> tuple[str, tuple[str, ...]]:
    examples = tuple(e.strip() for e in re.findall(r'"([^"]+)"', gloss) if e.strip())
    definition = gloss.split('"', 1)[0].strip().rstrip(";").strip()
    return definition, examples


def _parse_data_line(line: str, pos: str) -> Synset:
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    count = int(fields[3], 16)
    # adjective markers such as "(a)" never occur in nouns and verbs, but strip them anyway
    lemmas = tuple(re.sub(r"\(.*\)$", "", fields[4 + 2 * i]).lower() for i in range(count))
    definition, examples = _parse_gloss(gloss)
    return Synset(int(fields[0]), pos, int(fields[1]), lemmas, definition, examples)


def _records(name: str) -> Iterator[str]:
    """The lines of the WordNet file `name` after its licence header, whose lines start with two
    spaces (data.* and index.* have one; the .exc files have none)."""
    with open(wordnet_dir() / name, encoding="utf-8") as handle:
        for line in handle:
            if not line.startswith("  "):
                yield line


@lru_cache(maxsize=None)
def synsets(pos: str) -> dict[int, Synset]:
    """offset -> Synset for pos "n" or "v", in file order."""
    found = {}
    for line in _records(f"data.{POS_FILES[pos]}"):
        synset = _parse_data_line(line, pos)
        found[synset.offset] = synset
    return found


@lru_cache(maxsize=None)
def senses(pos: str) -> dict[str, tuple[int, ...]]:
    """lemma -> its synset offsets, most frequent sense first (index.noun / index.verb)."""
    found = {}
    for line in _records(f"index.{POS_FILES[pos]}"):
        fields = line.split()
        n_synsets = int(fields[2])
        found[fields[0]] = tuple(int(o) for o in fields[-n_synsets:])
    return found


@lru_cache(maxsize=None)
def exceptions(pos: str) -> dict[str, tuple[str, ...]]:
    """base form -> irregular inflected forms (noun.exc, verb.exc: "ran run" etc.)."""
    inflected: dict[str, list[str]] = {}
    for line in _records(f"{POS_FILES[pos]}.exc"):
        form, *bases = line.split()
        for base in bases:
            inflected.setdefault(base, []).append(form)
    return {base: tuple(forms) for base, forms in inflected.items()}


def word_forms(lemma: str, pos: str) -> set[str]:
    """The lemma and its regular and irregular inflections (lower case), for finding the target
    word in an example sentence: "bank" -> bank, banks; "run" -> run, runs, running, ran, ..."""
    forms = {lemma, lemma + "s", lemma + "es"}
    if pos == "v":
        stem = lemma[:-1] if lemma.endswith("e") else lemma
        forms |= {lemma + "d", lemma + "ed", stem + "ing", lemma + lemma[-1] + "ed", lemma + lemma[-1] + "ing"}
    if lemma.endswith("y"):
        forms |= {lemma[:-1] + "ies", lemma[:-1] + "ied"}
    forms |= set(exceptions(pos).get(lemma, ()))
    return forms


def find_form(sentence: str, forms: set[str]) -> tuple[int, int] | None:
    """Character span of the first whole word of `sentence` that is one of `forms` (any case)."""
    for match in re.finditer(r"[A-Za-z]+(?:-[A-Za-z]+)*", sentence):
        if match.group().lower() in forms:
            return match.span()
    return None


@lru_cache(maxsize=1)
def lexnames() -> dict[int, tuple[str, str]]:
    """file number -> (name, description), e.g. 5 -> ("noun.animal", "nouns denoting animals"),
    read from the lexnames(5WN) man page."""
    try:
        text = gzip.open(LEXNAMES_MAN, "rt", encoding="utf-8").read()
    except OSError:
        raise WordNetMissing(f"the lexnames(5WN) man page is missing ({LEXNAMES_MAN}); "
                             f"install it with: {INSTALL_HINT}") from None
    found = {}
    for number, name, description in re.findall(r"^(\d\d)\t(\S+)\s*\t(.+?)\s*$", text, flags=re.M):
        found[int(number)] = (name, description)
    return found


@dataclass(frozen=True)
class Example:
    """One example sentence with the lemma it illustrates and where that word is."""
    lemma: str
    pos: str
    synset: int  # offset
    sense_rank: int  # 0 = the lemma's most frequent sense
    sentence: str
    span: tuple[int, int]  # characters of the lemma's word form in the sentence


@lru_cache(maxsize=None)
def examples(pos: str) -> tuple[Example, ...]:
    """Every (single-word lemma, example sentence) where the example contains a form of the
    lemma, in index order. Multi-word lemmas ("river_bank") are left out: the lessons follow one
    word's vector."""
    table = synsets(pos)
    found = []
    for lemma, offsets in senses(pos).items():
        if not lemma.isalpha():
            continue
        forms = word_forms(lemma, pos)
        for rank, offset in enumerate(offsets):
            for sentence in table[offset].examples:
                span = find_form(sentence, forms)
                if span is not None:
                    found.append(Example(lemma, pos, offset, rank, sentence, span))
    return tuple(found)
