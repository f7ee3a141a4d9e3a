"""Results as Python holds them: a run directory (the command line's, or one the package wrote)
read into numpy arrays and pandas DataFrames — Run, Sweep, PhaseDiagram, Experiments, Tms — and
load(), which picks the class by the directory's manifest."""
from __future__ import annotations

import errno
import io
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from . import _core

def _read_bytes(path: Path) -> bytes:
    """A regular file of a run directory: never blocking on a FIFO planted at its name."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"'{path}' is not a regular file (a FIFO, device or directory)")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)


def _json(path: Path) -> Any:
    return json.loads(_read_bytes(path))


def load(path) -> Any:
    """Any run directory the command line (or this module, with out=) wrote: a Run, Sweep,
    PhaseDiagram or Experiments, by its manifest's command."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(errno.ENOENT if not path.exists() else errno.ENOTDIR,
                                "not a superpose run directory (no such directory)", str(path))
    manifest_file = path / "manifest.json"
    if (path / "tms.json").exists():
        result = Tms._load(path)
        result.path = path
        return result
    if not manifest_file.exists():
        if (path / "sweep.json").exists():
            raise ValueError(f"'{path}' holds a sweep that is not merged yet: run "
                             f"superpose.merge('{path}') once every shard has finished")
        raise ValueError(f"'{path}' is not a superpose run directory (no manifest.json)")
    command = _json(manifest_file)["command"]
    kind = {"train": Run, "sweep": Sweep, "tms": Sweep, "phase-diagram": PhaseDiagram,
            "experiments": Experiments}.get(command)
    if kind is None:
        raise ValueError(f"'{path}': unknown command '{command}' in its manifest")
    result = kind._load(path)
    result.path = path
    return result


def _read_csv(path: Path) -> pd.DataFrame:
    # Every number parses to the double the engine printed, bit for bit: pandas 3's default,
    # "round_trip" before it.
    source = io.BytesIO(_read_bytes(path))
    if int(pd.__version__.split(".")[0]) >= 3:
        return pd.read_csv(source)
    return pd.read_csv(source, float_precision="round_trip")


def _read_results(path: Path) -> pd.DataFrame:
    return _read_csv(path)


def _parameters(results: pd.DataFrame, n: int, m: int):
    W = results[[f"W_{j}_{f}" for j in range(m) for f in range(n)]].to_numpy(np.float64)
    b = results[[f"b_{f}" for f in range(n)]].to_numpy(np.float64)
    # The engine trains in float32; results.csv holds those floats exactly.
    return W.astype(np.float32).reshape(len(results), m, n), b.astype(np.float32)


def _npy(path: Path) -> Optional[np.ndarray]:
    return np.load(io.BytesIO(_read_bytes(path))) if path.exists() else None


def _axis_values(axis: Dict[str, Any]) -> List[float]:
    """An axis's values: listed, or from the generator the manifest keeps for a generated axis
    (the engine's own parser computes them: the same doubles)."""
    return axis["values"] if "values" in axis else _core.axis_values(axis["generator"])


@dataclass
class Run:
    """One trained model (`train`, or an experiment's example run)."""
    W: np.ndarray                 # m x n, float32
    b: np.ndarray                 # n
    train_loss: np.ndarray        # per step, the loss before each update
    eval_loss: Optional[np.ndarray]
    eval_steps: np.ndarray
    W_snapshots: np.ndarray       # snapshots x m x n
    b_snapshots: np.ndarray       # snapshots x n
    snapshot_steps: np.ndarray
    data: Optional[np.ndarray]    # the fixed dataset (training rows first), where fixed
    results: pd.DataFrame         # results.csv's one row
    manifest: Dict[str, Any]
    path: Optional[Path] = None
    log: str = ""

    @classmethod
    def _load(cls, path: Path) -> "Run":
        path = Path(path)
        manifest = _json(path / "manifest.json")
        results = _read_results(path / "results.csv")
        n, m = int(results["n_features"][0]), int(results["n_hidden"][0])
        W, b = _parameters(results, n, m)
        eval_loss = _npy(path / "eval_loss.npy")
        return cls(W=W[0], b=b[0], train_loss=_npy(path / "train_loss.npy")[0],
                   eval_loss=None if eval_loss is None else eval_loss[0],
                   eval_steps=_npy(path / "eval_steps.npy"),
                   W_snapshots=_npy(path / "W.npy")[0], b_snapshots=_npy(path / "b.npy")[0],
                   snapshot_steps=_npy(path / "snapshot_steps.npy"),
                   data=_npy(path / "data.npy"), results=results, manifest=manifest)


@dataclass
class Sweep:
    """A sweep: results.csv as a DataFrame, and W, b with the sweep's axes as leading dimensions."""
    results: pd.DataFrame         # one row per model, by model_id: exactly results.csv's values
    W: np.ndarray                 # shape + (m, n), float32
    b: np.ndarray                 # shape + (n,)
    axes: Dict[str, np.ndarray]   # name -> values (labels for the model kind), slowest first
    shape: tuple
    manifest: Dict[str, Any]
    trajectories: Dict[str, np.ndarray] = field(default_factory=dict)  # with trajectories=True
    path: Optional[Path] = None
    log: str = ""

    @classmethod
    def _load(cls, path: Path):
        path = Path(path)
        manifest = _json(path / "manifest.json")
        results = _read_results(path / "results.csv").sort_values("model_id", ignore_index=True)
        shape = tuple(manifest["shape"])
        n, m = int(manifest["group"]["n_features"]), int(manifest["group"]["n_hidden"])
        W, b = _parameters(results, n, m)
        axes = {a["name"]: np.array(a["labels"] if "labels" in a else _axis_values(a))
                for a in manifest["axes"]}
        trajectories = {}
        chunks = [path / c["dir"] for c in manifest["chunks"]]
        for name in ("train_loss", "eval_loss", "W", "b"):
            parts = [_npy(c / f"{name}.npy") for c in chunks if (c / f"{name}.npy").exists()]
            if parts and len(parts) == len(chunks):
                # A steps axis gives chunks of different lengths: the shorter ones end in NaN.
                longest = max(p.shape[1] for p in parts)
                parts = [np.pad(p.astype(np.float32), [(0, 0), (0, longest - p.shape[1])] +
                                [(0, 0)] * (p.ndim - 2), constant_values=np.nan)
                         for p in parts]
                whole = np.concatenate(parts)
                trajectories[name] = whole.reshape(shape + whole.shape[1:])
        return cls(results=results, W=W.reshape(shape + (m, n)), b=b.reshape(shape + (n,)),
                   axes=axes, shape=shape, manifest=manifest, trajectories=trajectories)

    def to_xarray(self):
        """The results' numbers as an xarray.Dataset over the sweep's labelled axes (needs xarray)."""
        import xarray as xr
        dims = list(self.axes)
        data = {}
        for column in self.results.columns:
            values = self.results[column].to_numpy()
            if column not in self.axes and column != "model_id" and \
                    np.issubdtype(values.dtype, np.number):
                data[column] = (dims, values.reshape(self.shape))
        m, n = self.W.shape[-2:]
        data["W"] = (dims + ["hidden", "feature"], self.W)
        data["b"] = (dims + ["feature"], self.b)
        coords = {name: values for name, values in self.axes.items()}
        coords.update(hidden=np.arange(m), feature=np.arange(n))
        return xr.Dataset(data, coords=coords, attrs={"command": self.manifest.get("command", "")})


@dataclass
class PhaseDiagram(Sweep):
    """A phase diagram: the sweep, and phase_diagram.csv's cells."""
    cells: Optional[pd.DataFrame] = None

    @classmethod
    def _load(cls, path: Path):
        sweep = Sweep._load(path)
        cells = _read_csv(Path(path) / "phase_diagram.csv")
        return cls(**{f: getattr(sweep, f) for f in Sweep.__dataclass_fields__}, cells=cells)


@dataclass
class Experiments:
    """The essay's six experiments: the summary, every model's row, and the example runs."""
    summary: pd.DataFrame         # experiments.csv: per experiment, losses and the outcome's share
    results: pd.DataFrame         # every model
    examples: Dict[int, Run]      # experiment number -> its example seed's run
    manifest: Dict[str, Any]
    path: Optional[Path] = None
    log: str = ""

    @classmethod
    def _load(cls, path: Path) -> "Experiments":
        path = Path(path)
        manifest = _json(path / "manifest.json")
        examples = {}
        for directory in sorted(path.glob("exp*-*")):
            if (directory / "manifest.json").exists():
                run = Run._load(directory)
                examples[int(run.manifest["experiment"])] = run
        return cls(summary=_read_csv(path / "experiments.csv"),
                   results=_read_results(path / "results.csv"), examples=examples,
                   manifest=manifest)


@dataclass
class Tms:
    """`superpose tms`: each result's sweep by name, and the verdicts — one row per result: name,
    title, shows (whether its trained W shows what the paper reports) and the measured lines."""
    results: Dict[str, Sweep]
    verdicts: pd.DataFrame
    report: Dict[str, Any]
    path: Optional[Path] = None
    log: str = ""

    @classmethod
    def _load(cls, path: Path) -> "Tms":
        path = Path(path)
        report = _json(path / "tms.json")
        results = {e["name"]: Sweep._load(path / e["dir"]) for e in report["experiments"]}
        verdicts = pd.DataFrame([{"name": e["name"], "title": e["title"], "shows": e["shows"],
                                  "lines": "\n".join(e["lines"])}
                                 for e in report["experiments"]])
        return cls(results=results, verdicts=verdicts, report=report)

