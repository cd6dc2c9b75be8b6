"""minibert: a readable BERT encoder (Devlin et al. 2019) that loads real checkpoints."""

# bert-sentence: tokenizer, sentence encoder
from minibert.tokenizer import Tokenizer

__all__ = ["Tokenizer"]
