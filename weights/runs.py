"""What both trainers share: the files of a training run (checkpoints that survive any kill, a
lock, a log kept step-unique), the batches of similar-length sentences, and the progress line.

Both trainers (minielmo/train.py for the biLM, minibert/train_mlm.py for the masked LM) keep their
run folder with these functions, so a run can be killed at any moment (Ctrl-C, SIGTERM, the
machine going away) and continued with `--resume`, and nothing ever silently trains on the wrong
state:

- `save_checkpoint` writes to a temporary file, fsyncs it and renames it over the old one: a kill
  mid-write leaves the previous checkpoint whole. It refuses non-finite weights, so a diverged run
  can never overwrite a good checkpoint.
- `load_checkpoint` reads with `weights_only=True` (tensors, numbers, strings and containers; a
  checkpoint is never unpickled as arbitrary objects) and turns every way a file can be broken
  (truncated, empty, garbage, missing keys) into one `RunError` line naming the file.
- `check_identity` compares what a checkpoint depends on (size, seed, vocabulary and corpus
  hashes) with the run being resumed, and names every difference.
- `RunLock` makes two runs pointed at one folder refuse each other.
- `StopRequests` turns SIGINT/SIGTERM into a flag the training loop reads between steps, so it
  stops at a step boundary with a fresh checkpoint instead of dying mid-update.
- `keep_log_until` drops log lines past the checkpoint a run resumes from, so each step is logged
  once.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sys
import time
from pathlib import Path

import torch


class RunError(Exception):
    """A training run cannot go on; the message is one line that says why and what to do."""


def _all_finite(state) -> bool:
    if isinstance(state, torch.Tensor):
        return not state.is_floating_point() or bool(torch.isfinite(state).all())
    if isinstance(state, dict):
        return all(_all_finite(value) for value in state.values())
    if isinstance(state, (list, tuple)):
        return all(_all_finite(value) for value in state)
    if isinstance(state, float):
        return math.isfinite(state)
    return True


def save_checkpoint(path: Path, state: dict, finite_keys: tuple[str, ...]) -> None:
    """Write `state` to `path` atomically. The entries named in `finite_keys` (the weights) must be
    finite: a checkpoint is never written from a diverged model."""
    bad = [key for key in finite_keys if not _all_finite(state[key])]
    if bad:
        raise RunError(f"refusing to write {path}: non-finite values in {', '.join(bad)}; the previous "
                       f"checkpoint is kept")
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except OSError as error:
        raise RunError(f"cannot write {path}: {error.strerror or error}") from None


def load_checkpoint(path: Path, required: tuple[str, ...]) -> dict:
    """Read a checkpoint written by save_checkpoint; every failure is one RunError line."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"{path} does not exist") from None
    except PermissionError:
        raise RunError(f"{path}: permission denied") from None
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ... by cause
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RunError(f"{path} is not a readable checkpoint (truncated or corrupt?): {reason[:120]}") from None
    if not isinstance(state, dict):
        raise RunError(f"{path} is not a training checkpoint (it holds a {type(state).__name__})")
    missing = [key for key in required if key not in state]
    if missing:
        raise RunError(f"{path} is not a checkpoint of this trainer: it lacks {', '.join(missing)}")
    return state


def restore(path: Path, state: dict, parts: dict, what: str, cuda: bool = False) -> None:
    """Load each part (a module or optimizer) from state[its key], then the random number
    generators the run saved; a state that does not fit is one RunError line naming `what`."""
    try:
        for key, part in parts.items():
            part.load_state_dict(state[key])
    except (RuntimeError, ValueError, KeyError) as error:
        raise RunError(f"{path} does not fit {what}: {str(error).splitlines()[0][:160]}") from None
    torch.set_rng_state(state["rng"])
    if cuda and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"])


def check_identity(path: Path, saved: dict, expected: dict) -> None:
    """Refuse to resume when anything the checkpoint depends on differs, naming every difference."""
    differences = [f"{key} {saved.get(key)!r} in the checkpoint, {value!r} now"
                   for key, value in expected.items() if saved.get(key) != value]
    if differences:
        raise RunError(f"{path} belongs to another run: " + "; ".join(differences)
                       + " (use another --out, or the original settings and files)")


class RunLock:
    """`with RunLock(folder):` creates the folder if needed and holds folder/LOCK (with this
    process id) for the run's lifetime.
    A lock left by a process that no longer exists is taken over; a live one is refused."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / "LOCK"

    def __enter__(self) -> "RunLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunError(f"cannot create {self.path.parent}: {error.strerror or error}") from None
        for _ in range(2):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and _alive(owner):
                    raise RunError(f"{self.path.parent} is in use by another training run (process "
                                   f"{owner}); wait for it, stop it, or use another --out") from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            except OSError as error:
                raise RunError(f"cannot write to {self.path.parent}: {error.strerror or error}") from None
            with os.fdopen(descriptor, "w") as file:
                file.write(str(os.getpid()))
            return self
        raise RunError(f"cannot take the lock {self.path}")

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def __exit__(self, *exc) -> None:
        if self._owner() == os.getpid():
            self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StopRequests:
    """`with StopRequests() as stop:` ... `if stop.requested:` — SIGINT and SIGTERM set the flag
    instead of killing the process; a second SIGINT interrupts at once (KeyboardInterrupt)."""

    def __init__(self):
        self.requested = None  # the signal's name once one arrives

    def _handle(self, number, frame) -> None:
        if self.requested and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(number).name

    def check(self, step: int, checkpoint: Path) -> None:
        """Called after a requested stop's checkpoint is written: stop with the one line that says
        how to continue."""
        if self.requested:
            raise RunError(f"stopped by {self.requested} at step {step}; checkpoint written to {checkpoint}; "
                           f"continue with --resume")

    def __enter__(self) -> "StopRequests":
        self._previous = {}
        for number in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[number] = signal.signal(number, self._handle)
            except ValueError:  # not the main thread: signals stay as they are
                pass
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def keep_log_until(path: Path, step: int) -> None:
    """Drop the log lines of steps after `step` (they are redone after a resume), and any line
    cut short by a kill, so that every step is in the log once."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("step", 0) <= step:
            kept.append(line)
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def length_batches(lengths, seed: int, epoch: int, tokens_per_batch: int, boundary: int = 2) -> list[list[int]]:
    """Indices of sentences (given their lengths), grouped so that a batch holds sentences of
    similar length (little padding) and at most `tokens_per_batch` positions counting `boundary`
    extra positions per sentence (<S> </S>, or [CLS] [SEP]); in an order fixed by (seed, epoch),
    so a resumed run sees the same batches."""
    rng = random.Random(seed * 1000 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    # Sort within pools of shuffled sentences: similar lengths together, pools still random.
    pool = 100 * max(1, tokens_per_batch // 20)
    for start in range(0, len(order), pool):
        batch, longest = [], 0
        for i in sorted(order[start:start + pool], key=lambda i: lengths[i]):
            length = int(lengths[i]) + boundary
            if batch and max(longest, length) * (len(batch) + 1) > tokens_per_batch:
                batches.append(batch)
                batch, longest = [], 0
            batch.append(i)
            longest = max(longest, length)
        if batch:
            batches.append(batch)
    rng.shuffle(batches)
    return batches


class Progress:
    """One status line on stderr, rewritten in place: a bar, the step, how much of the run is done
    (in `unit`s), the rate since this process started, what the trainer adds, and the ETA."""

    def __init__(self, total: int, done: int, unit: str):
        self.total, self.start_done, self.unit, self.start = total, done, unit, time.time()

    def show(self, step: int, done: int, *details: str) -> float:
        """Redraw the line; returns the rate in units per second."""
        rate = (done - self.start_done) / max(time.time() - self.start, 1e-9)
        eta = (self.total - done) / max(rate, 1e-9)
        bar = "#" * int(30 * min(1.0, done / max(1, self.total)))
        print(f"\r[{bar:<30}] step {step} | {done:,}/{self.total:,} {self.unit} | {rate:,.0f} {self.unit}/s | "
              + "".join(f"{d} | " for d in details) + f"ETA {max(0.0, eta) / 60:.1f} min ",
              end="", file=sys.stderr, flush=True)
        return rate
