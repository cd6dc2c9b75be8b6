"""Text -> words -> sentences, exactly as minielmo's own biLM saw its training text.

One function splits words for everything that feeds the shipped biLM: the training corpus
(minielmo/corpus.py), `python -m minielmo`, evaluation and the lessons. A model trained on
"don ' t" and shown "don't" would read a word it never saw, so training and use must agree.

    split_words("Mr. Darcy didn't come.")   -> ['Mr', '.', 'Darcy', 'didn', "'", 't', 'come', '.']
    split_sentences("Mr. Darcy came. He left!") -> [['Mr', '.', 'Darcy', 'came', '.'], ['He', 'left', '!']]

Words: the `tokenizers` library's BERT pre-tokenizer: split at whitespace, then every punctuation
character is a word of its own; case is kept, because the char CNN sees case.
Sentences: end at '.', '!' or '?', except a '.' right after a known abbreviation ("Mr .",
"St .": ABBREVIATIONS) or after a single capital letter (an initial, "J . Smith"); closing
brackets, and a closing '"' of a quote the sentence opened, stay with the sentence they close.
"""

from __future__ import annotations

from tokenizers import pre_tokenizers

# Words that end in "." without ending the sentence, as they appear in the corpus (Austen's
# "Mr." and "Mrs.", the Bible's and Shakespeare's "St.", WordNet's "e.g."/"i.e." and "etc.").
ABBREVIATIONS = frozenset({
    "Mr", "Mrs", "Messrs", "Ms", "Dr", "St", "Capt", "Col", "Gen", "Lt", "Rev", "Esq", "Jr",
    "Sr", "Mt", "vs", "viz", "cf", "etc", "e", "g", "i", "Co", "Ltd", "Inc", "Bros",
})
SENTENCE_ENDS = frozenset({".", "!", "?"})
CLOSERS = frozenset({")", "]", "}"})  # not "'": in Shakespeare it opens elisions ('Tis)
MAX_SENTENCE_WORDS = 50  # longer sentences are cut into pieces: the LSTM is trained on <= 52 steps

_PRE_TOKENIZER = pre_tokenizers.BertPreTokenizer()


def split_words(text: str) -> list[str]:
    """Whitespace, then every punctuation character on its own ("Mr." -> "Mr", ".")."""
    if not isinstance(text, str):
        raise TypeError(f"split_words takes a str, got {type(text).__name__}")
    return [word for word, _ in _PRE_TOKENIZER.pre_tokenize_str(text)]


def split_words_with_spans(text: str) -> list[tuple[str, tuple[int, int]]]:
    """split_words, with each word's (start, end) character offsets in `text`."""
    if not isinstance(text, str):
        raise TypeError(f"split_words_with_spans takes a str, got {type(text).__name__}")
    return [(word, tuple(span)) for word, span in _PRE_TOKENIZER.pre_tokenize_str(text)]


def _ends_sentence(words: list[str], i: int) -> bool:
    """Does words[i] end a sentence? A '.' after an abbreviation or an initial does not."""
    if words[i] not in SENTENCE_ENDS:
        return False
    if words[i] == "." and i > 0:
        previous = words[i - 1]
        initial = len(previous) == 1 and previous.isupper() and previous not in ("I", "A", "O")
        if previous in ABBREVIATIONS or initial:
            return False
    return True


def split_sentences(text: str, max_words: int = MAX_SENTENCE_WORDS) -> list[list[str]]:
    """One paragraph of text -> its sentences as word lists, none longer than `max_words`.
    Sentences with no letter or digit (stray punctuation) are dropped."""
    words = split_words(text)
    sentences, current, i = [], [], 0
    while i < len(words):
        current.append(words[i])
        if _ends_sentence(words, i):
            # What closes the sentence stays with it: brackets, "?!" runs, and a '"' when the
            # sentence has an open quote (an even count means the next '"' opens a new one).
            while i + 1 < len(words) and (words[i + 1] in CLOSERS or words[i + 1] in SENTENCE_ENDS
                                          or (words[i + 1] == '"' and current.count('"') % 2 == 1)):
                i += 1
                current.append(words[i])
            sentences.append(current)
            current = []
        elif len(current) >= max_words:
            sentences.append(current)
            current = []
        i += 1
    if current:
        sentences.append(current)
    return [s for s in sentences if any(w.isalnum() for w in s)]
