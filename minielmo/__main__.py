"""python -m minielmo: embed tokenised sentences with an ELMo biLM and show or save every layer.

    python -m minielmo "The cat sat ." "ELMo reads characters ."      # print shapes and vectors
    echo "one sentence per line" | python -m minielmo -              # sentences from stdin
    python -m minielmo --model fixture "A sentence ."                 # a shipped model by name
    python -m minielmo --options o.json --weights w.hdf5 --npz out.npz "A sentence ."
    python -m minielmo predict "I deposited the money in the"        # the two LMs' guesses

Sentences are split into words as the shipped model's training text was (minielmo.words:
"sat." -> "sat", "."; "don't" -> "don", "'", "t"). Without --options/--weights a model shipped with the package is
used: by default minielmo's own small biLM, trained from scratch (docs/elmo_model_card.md);
`--model fixture` is allennlp's tiny test model, for checking numbers, not for any real task.
"""

import argparse
import sys

import numpy as np
import torch

from .bilm import BiLM
from .characters import batch_to_ids
from .pretrained import DEFAULT_MODEL, PRETRAINED
from .words import split_words

EXAMPLES = ["The cat sat on the mat .", "ELMo reads words as characters ."]
MODEL_NOTES = {
    "small": ("Using minielmo's own small ELMo (projection 128, cell 512, 2 layers), trained from "
              "scratch on about 4.3 M words of English; docs/elmo_model_card.md says what it has "
              "and has not learned."),
    "fixture": ("Using the TINY TEST MODEL shipped with minielmo (the allennlp 0.9.0 test fixture: "
                "projection 16, cell 64, 2 layers). It exists to check numbers against the "
                "original TensorFlow biLM, not to give useful word vectors."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m minielmo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sentences", nargs="*",
                        help="sentences, tokens separated by spaces; '-' reads stdin, one per "
                             "line; none: two example sentences")
    parser.add_argument("--model", choices=sorted(PRETRAINED), default=None,
                        help=f"a model shipped with the package (default: {DEFAULT_MODEL})")
    parser.add_argument("--options", help="ELMo options.json of your own model (with --weights)")
    parser.add_argument("--weights", help="ELMo weights, .hdf5 as released or converted "
                                          ".safetensors (with --options)")
    parser.add_argument("--npz", help="write layer_0..layer_L (B, T, 2P) and mask (B, T) here, "
                                      "without <S> </S>, instead of printing vectors")
    parser.add_argument("--max-dims", type=int, default=6,
                        help="values printed per vector (default 6; 0 prints all)")
    return parser


def read_sentences(args, parser) -> list[list[str]]:
    if args.sentences == ["-"]:
        lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
    elif "-" in args.sentences:
        parser.error("'-' (read stdin) cannot be mixed with sentences on the command line")
    else:
        lines = args.sentences
    if not lines:
        print(f"No sentences given; embedding two examples: {EXAMPLES}")
        lines = EXAMPLES
    return [split_words(line) for line in lines]


def format_vector(vector: torch.Tensor, max_dims: int) -> str:
    shown = vector if max_dims <= 0 else vector[:max_dims]
    text = " ".join(f"{value:+.4f}" for value in shown.tolist())
    return text + (" ..." if 0 < max_dims < vector.numel() else "")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["predict"]:
        from .predict import main as predict

        return predict(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.options is None) != (args.weights is None):
        parser.error("--options and --weights go together: give both, or neither for a shipped "
                     "model")
    if args.options is not None and args.model is not None:
        parser.error("--model names a shipped model; it cannot be combined with --options/--weights")
    sentences = read_sentences(args, parser)
    try:
        if args.options is None:
            name = args.model or DEFAULT_MODEL
            print(MODEL_NOTES.get(name, f"Using the shipped model {name!r}."))
            bilm = BiLM.from_pretrained(name)
        else:
            bilm = BiLM.from_files(args.options, args.weights)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))

    with torch.no_grad():
        output = bilm(batch_to_ids(sentences))
    mask = output["mask"][:, 2:]  # (B, T+2) -> (B, T): True on real tokens
    layers = [layer[:, 1:-1] * mask.unsqueeze(-1) for layer in output["activations"]]  # drop <S> </S>
    names = ["token layer (char CNN), duplicated for both directions"] + [
        f"biLSTM layer {k} (forward | backward)" for k in range(1, len(layers))]

    if args.npz:
        arrays = {f"layer_{k}": layer.numpy() for k, layer in enumerate(layers)}
        try:
            np.savez(args.npz, mask=mask.numpy(), sentences=np.array([" ".join(s) for s in sentences]),
                     **arrays)
        except OSError as error:
            parser.error(f"cannot write --npz {args.npz}: {error.strerror or error}")
        print(f"Wrote {args.npz}: " + ", ".join(f"layer_{k} {tuple(layer.shape)}"
                                                 for k, layer in enumerate(layers))
              + f", mask {tuple(mask.shape)}")
        return
    for k, (name, layer) in enumerate(zip(names, layers)):
        print(f"\nlayer {k}: {name}, shape {tuple(layer.shape)}  (sentences, tokens, 2 x projection)")
        for i, sentence in enumerate(sentences):
            for j, token in enumerate(sentence):
                print(f"  [{i}] {token:>14.14}  {format_vector(layer[i, j], args.max_dims)}")


if __name__ == "__main__":
    main()
