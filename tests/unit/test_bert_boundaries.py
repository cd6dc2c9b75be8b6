"""The project's boundaries, checked on the source: the model file imports only torch (and the
stdlib), the library never imports the reference libraries, and nothing here unpickles."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUR_FILES = sorted((ROOT / "minibert").glob("*.py")) + sorted((ROOT / "weights").glob("*.py"))


def imported_modules(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_model_and_config_import_only_torch_and_stdlib():
    allowed = {"__future__", "math", "dataclasses", "json", "pathlib", "torch", "minibert", "weights"}
    for name in ("model.py", "config.py"):
        assert imported_modules(ROOT / "minibert" / name) <= allowed, name
    # `weights` appears only as the lazy import inside from_pretrained, never at module level.
    top_level = {node.names[0].name.split(".")[0] if isinstance(node, ast.Import) else node.module.split(".")[0]
                 for node in ast.parse((ROOT / "minibert" / "model.py").read_text()).body
                 if isinstance(node, (ast.Import, ast.ImportFrom))}
    assert "weights" not in top_level


def test_library_never_imports_reference_libraries():
    for path in OUR_FILES:
        assert not imported_modules(path) & {"transformers", "sentence_transformers", "allennlp"}, path


# Training checkpoints are the one torch.load, in one place, restricted to tensors and containers;
# the trainers restore their own state dicts from them with load_state_dict (weights.runs.restore). Released weights
# always go through the strict key tables instead.
CHECKPOINT_READER = ROOT / "weights" / "runs.py"
TRAINERS = {ROOT / "minibert" / "train_mlm.py", CHECKPOINT_READER}


def test_nothing_unpickles():
    for path in OUR_FILES:
        tree = ast.parse(path.read_text())
        assert "pickle" not in imported_modules(path), path
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
        for call in calls:
            name = ast.unparse(call.func)
            if name == "torch.load":
                assert path == CHECKPOINT_READER, path
                assert any(k.arg == "weights_only" and ast.unparse(k.value) == "True" for k in call.keywords), path
            if name.endswith("load_state_dict"):
                assert path in TRAINERS, (path, name)
