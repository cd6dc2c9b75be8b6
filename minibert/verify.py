"""Layer-by-layer comparison of minibert against a reference BERT (rasbt's layer debugger idea).

`layer_diffs` lines up two sets of outputs (ours and transformers', both run with all hidden
states and attentions) in forward order and gives max|diff| per stage, so a mismatch is traced to
the first stage that diverges rather than seen only at the end. Padding is left out of the
comparison: hidden states at pad positions and attention rows of pad queries are garbage both
models compute differently and no caller uses.

`run_verify` is the `python -m minibert verify` command.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

import torch

DEFAULT_ATOL = 1e-5  # float32 noise between two correct implementations of MiniLM is ~4e-6

@dataclass(frozen=True)
class LayerDiff:
    name: str          # "embeddings", "layer 3 attention", "layer 3 output", "pooler"
    max_abs_diff: float


def layer_diffs(ours, reference, attention_mask: torch.Tensor | None = None) -> list[LayerDiff]:
    """Per-stage max|diff| between two BERT outputs, in forward order.

    Both need `hidden_states` (L+1 x (B, T, D)); `attentions` (L x (B, H, T, T)) and
    `pooler_output` (B, D) are compared when both sides have them. attention_mask (B, T) selects
    the real tokens (default: all)."""
    first = ours.hidden_states[0]
    keep = (torch.ones(first.shape[:2], dtype=torch.bool) if attention_mask is None
            else attention_mask.bool()).to(first.device)                 # (B, T)

    def diff(a: torch.Tensor, b: torch.Tensor) -> float:
        return (a.detach().float() - b.detach().float()).abs().max().item() if a.numel() else 0.0

    if len(ours.hidden_states) != len(reference.hidden_states):
        raise ValueError(f"ours has {len(ours.hidden_states)} hidden states, the reference "
                         f"{len(reference.hidden_states)}: not the same depth")
    rows = [LayerDiff("embeddings", diff(ours.hidden_states[0][keep], reference.hidden_states[0][keep]))]
    num_layers = len(ours.hidden_states) - 1
    with_attentions = ours.attentions is not None and getattr(reference, "attentions", None) is not None
    for i in range(num_layers):
        if with_attentions:
            # (B, H, T, T) -> (B, T, H, T) so the real-query mask (B, T) selects whole rows.
            ours_rows = ours.attentions[i].transpose(1, 2)[keep]
            ref_rows = reference.attentions[i].transpose(1, 2)[keep]
            rows.append(LayerDiff(f"layer {i + 1} attention", diff(ours_rows, ref_rows)))
        rows.append(LayerDiff(f"layer {i + 1} output",
                              diff(ours.hidden_states[i + 1][keep], reference.hidden_states[i + 1][keep])))
    if ours.pooler_output is not None and getattr(reference, "pooler_output", None) is not None:
        rows.append(LayerDiff("pooler", diff(ours.pooler_output, reference.pooler_output)))
    return rows


def first_divergence(rows: list[LayerDiff], atol: float = DEFAULT_ATOL) -> LayerDiff | None:
    return next((row for row in rows if not row.max_abs_diff <= atol), None)  # `not <=` also catches NaN


def format_diffs(rows: list[LayerDiff], atol: float = DEFAULT_ATOL) -> str:
    lines = [f"{'stage':<22} max|diff|"]
    lines += [f"{row.name:<22} {row.max_abs_diff:.3e}{'   <-- above ' + format(atol, 'g') if not row.max_abs_diff <= atol else ''}"
              for row in rows]
    first = first_divergence(rows, atol)
    worst = max(rows, key=lambda row: row.max_abs_diff)
    lines.append(f"first diverging stage: {first.name}" if first else
                 f"all stages within {atol:g} (largest: {worst.name}, {worst.max_abs_diff:.3e})")
    return "\n".join(lines)


def assert_layers_close(ours, reference, attention_mask=None, atol: float = DEFAULT_ATOL) -> list[LayerDiff]:
    """For tests: raise AssertionError naming the first diverging stage, with the whole table."""
    rows = layer_diffs(ours, reference, attention_mask)
    first = first_divergence(rows, atol)
    if first is not None:
        raise AssertionError(f"first diverging stage: {first.name} "
                             f"(max|diff| {first.max_abs_diff:.3e} > {atol:g})\n{format_diffs(rows, atol)}")
    return rows


def run_verify(texts: list[str], name_or_dir: str = "all-MiniLM-L6-v2",
               atol: float = DEFAULT_ATOL) -> int:
    """Run minibert and transformers' BertModel (eager attention) on `texts`; print max|diff| per
    stage. Returns 0 when every stage is within atol, 1 when one is not, 2 without transformers."""
    # This command, on purpose, is the only place the library reaches the reference
    # implementation; everywhere else, transformers is a test-only dependency.
    try:
        transformers = importlib.import_module("transformers")
    except ImportError:
        print("`python -m minibert verify` compares against transformers, which is not installed.\n"
              "Install the test extra: pip install -e \".[test]\"", file=sys.stderr)
        return 2

    from minibert.model import BertModel
    from weights import resolve

    texts = list(texts)
    if not texts:
        raise ValueError("verify needs at least one text")
    model_dir = resolve(name_or_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    ours_model = BertModel.from_pretrained(model_dir)
    # eager: transformers 5's default sdpa attention returns no attention maps.
    reference_model = transformers.BertModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    inputs = {key: batch[key] for key in ("input_ids", "attention_mask", "token_type_ids") if key in batch}
    with torch.no_grad():
        ours = ours_model(**inputs, output_hidden_states=True, output_attentions=True)
        reference = reference_model(**inputs, output_hidden_states=True, output_attentions=True)
    rows = layer_diffs(ours, reference, inputs["attention_mask"])
    print(f"minibert vs transformers {transformers.__version__} (eager) on {len(texts)} texts, {model_dir}")
    print(format_diffs(rows, atol))
    return 0 if first_divergence(rows, atol) is None else 1
