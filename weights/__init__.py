"""Find, verify and load checkpoints; map their keys onto our modules."""

# ELMo (owner: elmo): released options.json + hdf5, and the converted safetensors form.
from .elmo_convert import convert as convert_elmo  # noqa: E402
from .elmo_hdf5 import load_bilm as load_elmo_bilm  # noqa: E402
