"""Convert a released ELMo (options.json + hdf5) to options.json + model.safetensors.

    python -m minielmo.convert OPTIONS.json WEIGHTS.hdf5 OUT_DIR

The converted files hold our parameters with every TF convention already applied (see
weights/elmo_hdf5.py), so loading them needs neither h5py nor any transform, and
`BiLM.from_files(OUT_DIR / "options.json", OUT_DIR / "model.safetensors")` reads them back.
"""

import argparse
from pathlib import Path

from weights.elmo_hdf5 import save_converted

from .bilm import BiLM


def convert(options_file, weight_file, out_dir) -> tuple[Path, Path]:
    """Released files -> converted files; returns their paths."""
    return save_converted(BiLM.from_files(options_file, weight_file), out_dir)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m minielmo.convert", description=__doc__,
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
