"""minibert: a readable BERT encoder (Devlin et al. 2019) that loads real checkpoints."""
