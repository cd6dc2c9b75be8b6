"""ElmoConfig: every size of an ELMo biLM, read from the options.json it was released with.

The field names are those of bilm-tf's options.json (Peters et al. 2018, released code), flattened
out of its two sections "lstm" and "char_cnn". Only `cell_size` (options: lstm.dim) and
`char_embedding_dim` (options: char_cnn.embedding.dim) are renamed, because a bare `dim` says
nothing once the sections are flattened.

Nothing here is a constant of one model: the small, medium and original ELMo files differ only in
these numbers, so every size the model uses comes from here.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from .characters import MAX_WORD_LENGTH

# The character vocabulary is fixed by the byte encoding (see characters.py): 256 UTF-8 byte values
# + 5 special characters = 261 ids, shifted by +1 so that 0 can mean "padding token".
NUM_CHAR_IDS = 262


@dataclass(frozen=True)
class ElmoConfig:
    # lstm section
    projection_dim: int  # P: the LSTM hidden state after projection, and the token embedding size
    cell_size: int  # C: options "lstm.dim", the LSTM memory cell size
    n_layers: int
    cell_clip: float | None  # clip the memory cell to [-cell_clip, cell_clip]; None/0 = off
    proj_clip: float | None  # clip the projected hidden state likewise; None/0 = off
    use_skip_connections: bool  # residual connection around every LSTM layer but the first
    # char_cnn section
    filters: tuple[tuple[int, int], ...]  # (width, number of filters) per convolution
    n_highway: int
    char_embedding_dim: int  # E: options "char_cnn.embedding.dim"
    n_characters: int  # 262 in released files (261 ids + padding row); 261 in training options
    max_characters_per_token: int  # W: 50 in every released file
    activation: str  # "relu" or "tanh", applied after the max-pool over character positions

    def __post_init__(self):
        if self.activation not in ("relu", "tanh"):
            raise ValueError(f"char_cnn.activation must be 'relu' or 'tanh', got {self.activation!r}")
        # bilm-tf trains with 261 characters and is told 262 at inference, once the padding row
        # exists; both name the same vocabulary, which batch_to_ids fixes at NUM_CHAR_IDS ids.
        if self.n_characters not in (NUM_CHAR_IDS - 1, NUM_CHAR_IDS):
            raise ValueError(f"char_cnn.n_characters must be 261 or 262, got {self.n_characters}")
        for name in ("projection_dim", "cell_size", "n_layers", "char_embedding_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_highway < 0:
            raise ValueError(f"char_cnn.n_highway must be >= 0, got {self.n_highway}")
        # batch_to_ids writes exactly MAX_WORD_LENGTH character slots per token, <S> and </S>
        # included; a model told otherwise would read ids laid out for another width.
        if self.max_characters_per_token != MAX_WORD_LENGTH:
            raise ValueError(f"char_cnn.max_characters_per_token must be {MAX_WORD_LENGTH} (the width "
                             f"batch_to_ids writes), got {self.max_characters_per_token}")
        too_wide = [width for width, _ in self.filters if width > self.max_characters_per_token]
        if not self.filters or too_wide or any(w < 1 or n < 1 for w, n in self.filters):
            raise ValueError(f"char_cnn.filters must be [width, count] pairs of positive integers, each "
                             f"width at most {self.max_characters_per_token} characters, got {list(self.filters)}")
        # A negative clip has no meaning (clamp(-c, c) with c < 0 is not a clip at all).
        for name in ("cell_clip", "proj_clip"):
            if getattr(self, name) is not None and not getattr(self, name) >= 0:
                raise ValueError(f"lstm.{name} must be >= 0 (0 or null: no clipping), got {getattr(self, name)}")

    @property
    def num_filters(self) -> int:
        """K: the char-CNN output width, the sum of all filter counts."""
        return sum(count for _, count in self.filters)

    @classmethod
    def from_options(cls, options: dict, source: str = "options") -> "ElmoConfig":
        """Build from a parsed options.json. A missing or mistyped key raises ValueError naming
        the key and `source` (the file)."""
        if not isinstance(options, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(options).__name__}")

        def need(check, section: str, *keys: str):
            value, path = options, ""
            for key in (section, *keys):
                path = f"{path}.{key}" if path else key
                if not isinstance(value, dict) or key not in value:
                    raise ValueError(f"{source}: missing key '{path}'")
                value = value[key]
            try:
                return check(value)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{source}: bad value {value!r} for '{path}' ({error})") from None

        try:
            return cls(**{field: need(reader, *place) for field, place, reader in OPTIONS})
        except ValueError as error:
            if str(error).startswith(source):
                raise
            raise ValueError(f"{source}: {error}") from None

    @classmethod
    def from_options_file(cls, path: str | Path) -> "ElmoConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ELMo options file not found: {path}")
        try:
            options = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        return cls.from_options(options, source=str(path))

    def to_options(self) -> dict:
        """The inverse of from_options, through the same table: an options.json-shaped dict (used
        by the converter and the export)."""
        options: dict = {}
        for field, place, _ in OPTIONS:
            section = options
            for key in place[:-1]:
                section = section.setdefault(key, {})
            section[place[-1]] = _as_json(getattr(self, field))
        return options


# Readers of options.json values. JSON has real booleans and numbers; a string such as "false" is
# refused rather than converted (bool("false") is True).

def _reader(kind: type, described: str):
    """A reader that passes a value of JSON type `kind` through and refuses any other; a bool is
    no integer here, though Python's bool is an int."""
    def read(value):
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise TypeError(f"expected {described}, got {type(value).__name__}")
        return value
    return read


_integer, _boolean, _string = _reader(int, "a JSON integer"), _reader(bool, "true or false"), _reader(str, "a string")


def _clip(value) -> float | None:
    """null or 0 means no clipping."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number or null, got {type(value).__name__}")
    if not value >= 0 or value == float("inf"):
        raise ValueError("a clip must be a finite number >= 0 (0 or null: no clipping)")
    return float(value)


def _filters(value) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list) or not all(isinstance(pair, list) and len(pair) == 2 for pair in value):
        raise TypeError("expected a list of [width, count] pairs")
    return tuple((_integer(width), _integer(count)) for width, count in value)


def _as_json(value):
    """Tuples (the filters) as the JSON lists they were read from."""
    return [_as_json(item) for item in value] if isinstance(value, tuple) else value


# Our field <- its place in options.json, read through the check for its JSON type: from_options
# reads the table, to_options writes it back.
OPTIONS = (
    ("projection_dim", ("lstm", "projection_dim"), _integer),
    ("cell_size", ("lstm", "dim"), _integer),
    ("n_layers", ("lstm", "n_layers"), _integer),
    ("cell_clip", ("lstm", "cell_clip"), _clip),
    ("proj_clip", ("lstm", "proj_clip"), _clip),
    ("use_skip_connections", ("lstm", "use_skip_connections"), _boolean),
    ("filters", ("char_cnn", "filters"), _filters),
    ("n_highway", ("char_cnn", "n_highway"), _integer),
    ("char_embedding_dim", ("char_cnn", "embedding", "dim"), _integer),
    ("n_characters", ("char_cnn", "n_characters"), _integer),
    ("max_characters_per_token", ("char_cnn", "max_characters_per_token"), _integer),
    ("activation", ("char_cnn", "activation"), _string),
)
