"""Save and restore a fit's training state, so that it survives a kernel restart.

A checkpoint is one ``.npz`` file: the parameters, the optimizer's state (Adam's moments,
the line search's step, the stopping rule's counters, the iteration), the history, and
a description of the fit that wrote it. It is written atomically — to a temporary file
in the same folder, flushed to disk, then renamed over the old one — so a crash mid-write
leaves the previous checkpoint intact. Mini-batches are drawn from (random_state,
iteration), so there is no random generator state to save.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

#: Bumped whenever the file layout changes; older files are refused with a clear error.
FORMAT = 1
FILENAME = "elastic_nb-checkpoint.npz"


class Checkpoint(NamedTuple):
    theta: np.ndarray
    state: dict
    history: list
    meta: dict


def checkpoint_file(path) -> Path:
    """The file for ``path``: itself if it ends in ``.npz``, else ``path/FILENAME``."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a folder or .npz path, got {path!r}")
    path = Path(path)
    return path if path.suffix == ".npz" else path / FILENAME


def _plain(value):
    """numpy scalars to Python numbers, for JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def save(path, theta, state: dict, history: list, meta: dict) -> Path:
    """Write a checkpoint atomically; returns the file written."""
    target = checkpoint_file(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"theta": np.asarray(theta)}
    scalars = {}
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            arrays[f"state.{key}"] = value
        else:
            scalars[key] = _plain(value)
    document = {"format": FORMAT, "meta": _plain(meta), "state": scalars, "history": history}
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as out:
            np.savez(out, document=np.array(json.dumps(_plain(document))), **arrays)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def load(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save`."""
    source = checkpoint_file(path)
    try:
        with np.load(source, allow_pickle=False) as data:
            document = json.loads(str(data["document"]))
            arrays = {k: data[k] for k in data.files if k != "document"}
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{source} is not an elastic_nb checkpoint: {err}") from err
    if document.get("format") != FORMAT:
        raise ValueError(
            f"{source} has checkpoint format {document.get('format')}; this version of "
            f"elastic_nb reads format {FORMAT}"
        )
    state = dict(document["state"])
    state.update({k[len("state.") :]: v for k, v in arrays.items() if k.startswith("state.")})
    return Checkpoint(arrays["theta"], state, document["history"], document["meta"])


def check_compatible(checkpoint: Checkpoint, meta: dict, path) -> None:
    """Refuse to resume a fit from a checkpoint another fit wrote."""
    expected = _plain(json.loads(json.dumps(_plain(meta))))
    for key, value in expected.items():
        found = checkpoint.meta.get(key)
        if found != value:
            raise ValueError(
                f"the checkpoint at {checkpoint_file(path)} was written by a different fit: "
                f"{key} is {found!r} there but {value!r} here"
            )
