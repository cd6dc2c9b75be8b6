"""Convert a released ELMo (options.json + hdf5) to options.json + model.safetensors.

The converted files hold our parameters with every TF convention already applied (see
weights/elmo_hdf5.py), so loading them needs neither h5py nor any transform: names and shapes
are checked one by one and copied. The JSON config keeps the options.json layout, so
`BiLM.from_files(out / "options.json", out / "model.safetensors")` is the whole API.

    python -m weights.elmo_convert OPTIONS.json WEIGHTS.hdf5 OUT_DIR
"""

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from weights.elmo_hdf5 import assign, load_bilm

OPTIONS_NAME = "options.json"
WEIGHTS_NAME = "model.safetensors"


def save_converted(model, out_dir) -> tuple[Path, Path]:
    """Write `model` (a minielmo.BiLM) as OUT_DIR/options.json + OUT_DIR/model.safetensors."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    options_path, weights_path = out_dir / OPTIONS_NAME, out_dir / WEIGHTS_NAME
    options_path.write_text(json.dumps(model.config.to_options(), indent=2) + "\n", encoding="utf-8")
    tensors = {name: param.detach().contiguous() for name, param in model.named_parameters()}
    save_file(tensors, str(weights_path), metadata={"format": "minielmo"})
    return options_path, weights_path


def convert(options_file, weight_file, out_dir) -> tuple[Path, Path]:
    """Released files -> converted files; returns their paths."""
    return save_converted(load_bilm(options_file, weight_file), out_dir)


def load_safetensors_into(model, weight_file: Path) -> dict:
    """Strictly fill `model` from a converted .safetensors: same names, same shapes, no extras."""
    tensors = load_file(str(weight_file))
    params = dict(model.named_parameters())
    missing = sorted(set(params) - set(tensors))
    if missing:
        raise ValueError(f"{weight_file}: tensors {missing} are missing")
    unused = sorted(set(tensors) - set(params))
    if unused:
        raise ValueError(f"{weight_file}: tensors {unused} are not parameters of the model "
                         f"built from options.json")
    for name, tensor in tensors.items():
        assign(params, name, tensor, name, weight_file)
    return {"loaded": sorted(tensors), "ignored": [], "missing": []}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m weights.elmo_convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("options_file")
    parser.add_argument("weight_file")
    parser.add_argument("out_dir")
    args = parser.parse_args(argv)
    try:
        options_path, weights_path = convert(args.options_file, args.weight_file, args.out_dir)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    print(f"wrote {options_path} and {weights_path}")


if __name__ == "__main__":
    main()
