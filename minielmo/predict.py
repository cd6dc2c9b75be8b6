"""What a biLM *is*: two language models. Show the forward LM's guesses for the next word and the
backward LM's guesses for the word before, with their probabilities.

    python -m minielmo predict "I deposited the money in the"
    python -m minielmo predict --top 10 --model small "the bank of the"

Peters et al. 2018 §3.1: the forward LM reads t_1..t_k and predicts t_{k+1}; the backward LM reads
t_N..t_k and predicts t_{k-1}. ELMo's vectors are these two LMs' hidden states; the shipped model
keeps its softmax (minielmo/lm_head.py), so the predictions can be shown. Neither LM ever sees the
word it predicts: that is what makes the task hard, and the states informative.
"""

from __future__ import annotations


import torch

from .bilm import BiLM
from .cli import OneLineParser
from .characters import batch_to_ids
from .lm_head import SharedSoftmax
from .words import split_words


@torch.no_grad()
def next_and_previous(bilm: BiLM, head: SharedSoftmax, words: list[str], text: str, top_k: int = 5) -> dict:
    """{"words", "next": [(word, p)], "previous": [(word, p)]} for `text`, split as in training.
    "</S>" as a next word means "the sentence ends here"; "<S>" as a previous word, "it starts here"."""
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    tokens = split_words(text)
    if not tokens:
        raise ValueError("give at least one word to predict around")
    was_training = bilm.training
    bilm.eval()
    top = bilm(batch_to_ids([tokens]))["activations"][-1][0]  # (T+2, 2P): <S> tokens </S>
    bilm.train(was_training)
    P = bilm.config.projection_dim
    # Position k holds the forward state after reading tokens up to k (it predicts k+1), and the
    # backward state after reading tokens from the end down to k (it predicts k-1).
    forward_state, backward_state = top[len(tokens), :P], top[1, P:]  # last word's and first word's
    result = {"words": tokens}
    for name, state in (("next", forward_state), ("previous", backward_state)):
        probs = head.log_prob(state[None]).exp()[0]  # (1, P) -> (V,)
        values, indices = probs.topk(min(top_k, probs.numel()))
        result[name] = [(words[i], round(v, 4)) for v, i in zip(values.tolist(), indices.tolist())]
    return result


def main(argv=None) -> None:
    from .evaluate import load_model
    from .pretrained import DEFAULT_MODEL

    parser = OneLineParser("python -m minielmo predict", __doc__)
    parser.add_argument("text", help="some words; split as the training text was")
    parser.add_argument("--top", type=int, default=5, help="how many guesses per direction (default: %(default)s)")
    parser.add_argument("--model", default=None, help=f"a shipped model with an LM head (default: {DEFAULT_MODEL})")
    args = parser.parse_args(argv)
    try:
        bilm, head, vocab, label = load_model(args.model)
        result = next_and_previous(bilm, head, vocab.words, args.text, args.top)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    shown = " ".join(result["words"])
    print(f"{label}; the text as the model reads it: {shown}\n")
    print(f"forward LM, the next word after '... {result['words'][-1]}':")
    for word, p in result["next"]:
        print(f"  {p:7.2%}  {word}")
    print(f"\nbackward LM, the word before '{result['words'][0]} ...':")
    for word, p in result["previous"]:
        print(f"  {p:7.2%}  {word}")
