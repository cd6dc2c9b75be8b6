"""BERT small's and ELMo small's training cost models side by side: `python -m bench.mlm_cost`.

The masked-LM BERT (minibert/train_mlm.py) is sized so that its training FLOPs per corpus word
match the ELMo biLM's (minielmo/cost.py), which makes the two a controlled comparison: same text,
same compute, different architecture and objective. minibert and minielmo may not import each
other, so the two cost models meet here. `--measure` also times a few BERT training steps on
this machine (ELMo's: python -m minielmo.cost --size small).
"""

from __future__ import annotations

import argparse

import torch

from minibert import train_mlm
from minielmo.cost import forward_macs_per_token
from minielmo.train import SIZES as ELMO_SIZES

ELMO_VOCAB_SIZE = 30000  # the corpus's word vocabulary (python -m minielmo.corpus)


def report(words: int = 6_000_000, size: str = "small") -> str:
    elmo = forward_macs_per_token(ELMO_SIZES["small"], ELMO_VOCAB_SIZE)
    return train_mlm.cost_report(size, words, elmo=elmo)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mlm_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=6_000_000, help="corpus words in the training budget")
    parser.add_argument("--measure", action="store_true", help="also time a few BERT training steps here")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    print(report(args.words))
    if args.measure:
        if args.threads:
            torch.set_num_threads(args.threads)
        print(f"\nmeasured here: {train_mlm.measure_rate('small'):,.0f} BERT small training pieces/s "
              f"({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
