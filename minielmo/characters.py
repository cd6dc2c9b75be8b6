"""batch_to_ids: tokenised sentences -> ELMo character ids, the input of the character CNN.

Shape legend: B batch · T tokens (longest sentence) · W chars/token (50)

ELMo reads each token as its UTF-8 bytes (Peters et al. 2018 §3.1 uses the character CNN of
Jozefowicz et al. 2016). Byte ids 0-255 are followed by 5 special characters:

    256 begin-of-sentence · 257 end-of-sentence · 258 begin-of-word · 259 end-of-word · 260 padding

A token becomes [begin-of-word, its bytes cut at 48, end-of-word, padding ...] (50 slots), and
every id is shifted by +1 so that an all-zero row means "no token here" (sentence padding).
The literal tokens "<S>" and "</S>" become the sentence-boundary characters, exactly as the
reference does; the biLM adds those boundary tokens itself, so users should not pass them.

Checked against: allennlp 0.9.0, data/token_indexers/elmo_indexer.py (ELMoCharacterMapper) and
modules/elmo.py (batch_to_ids). Left out: the reference's `tokens_to_add` extension.
"""

import torch

MAX_WORD_LENGTH = 50  # W: fixed by the released models' char CNN input

BEGINNING_OF_SENTENCE = 256
END_OF_SENTENCE = 257
BEGINNING_OF_WORD = 258
END_OF_WORD = 259
PADDING = 260

BOS_TOKEN = "<S>"
EOS_TOKEN = "</S>"


def _special_token(character: int) -> list[int]:
    ids = [PADDING] * MAX_WORD_LENGTH
    ids[0], ids[1], ids[2] = BEGINNING_OF_WORD, character, END_OF_WORD
    return ids


def word_to_char_ids(word: str) -> list[int]:
    """One token -> its W character ids, already shifted by +1 (so none is 0)."""
    if word == BOS_TOKEN:
        ids = _special_token(BEGINNING_OF_SENTENCE)
    elif word == EOS_TOKEN:
        ids = _special_token(END_OF_SENTENCE)
    else:
        # errors="ignore" drops what UTF-8 cannot encode (lone surrogates), like the reference.
        # The cut is on bytes, so a multi-byte character at the boundary is split: the reference
        # does the same and the released models were trained that way.
        word_bytes = word.encode("utf-8", "ignore")[: MAX_WORD_LENGTH - 2]
        ids = [PADDING] * MAX_WORD_LENGTH
        ids[0] = BEGINNING_OF_WORD
        ids[1 : len(word_bytes) + 1] = word_bytes
        ids[len(word_bytes) + 1] = END_OF_WORD
    return [i + 1 for i in ids]


# The boundary tokens the biLM inserts around every sentence, as (W,) id rows.
BOS_CHAR_IDS = torch.tensor(word_to_char_ids(BOS_TOKEN))
EOS_CHAR_IDS = torch.tensor(word_to_char_ids(EOS_TOKEN))


def batch_to_ids(sentences: list[list[str]]) -> torch.Tensor:
    """Tokenised sentences -> LongTensor (B, T, W) of character ids.

    Sentences shorter than the longest are padded with all-zero rows. An empty sentence is valid
    (the biLM then sees only its boundary tokens); an empty batch is not.
    """
    if isinstance(sentences, (str, bytes)) or not isinstance(sentences, (list, tuple)):
        raise TypeError(f"batch_to_ids expects a list of sentences (lists of token strings), "
                        f"got {type(sentences).__name__}")
    if len(sentences) == 0:
        raise ValueError("batch_to_ids got an empty batch: pass at least one sentence")
    for i, sentence in enumerate(sentences):
        if isinstance(sentence, (str, bytes)) or not isinstance(sentence, (list, tuple)):
            raise TypeError(f"sentence {i} must be a list of token strings, got "
                            f"{type(sentence).__name__} (tokenise it first, e.g. str.split())")
        for j, token in enumerate(sentence):
            if not isinstance(token, str):
                raise TypeError(f"sentence {i}, token {j} must be a str, got "
                                f"{type(token).__name__}: {token!r}")

    longest = max(len(sentence) for sentence in sentences)
    char_ids = torch.zeros(len(sentences), longest, MAX_WORD_LENGTH, dtype=torch.long)  # (B, T, W)
    for i, sentence in enumerate(sentences):
        for j, token in enumerate(sentence):
            char_ids[i, j] = torch.tensor(word_to_char_ids(token))
    return char_ids
