"""minibert: a readable BERT encoder (Devlin et al. 2019) that loads real checkpoints."""

from minibert.config import BertConfig
from minibert.model import BertModel, BertOutput

# The text side: tokenizer and sentence encoder
from minibert.tokenizer import Tokenizer
from minibert.sentence import SentenceEncoder

# The masked-LM side: BERT with its pre-training head, and fill-mask
from minibert.mlm import BertForMaskedLM
from minibert.fill_mask import FillMask, fill_mask
