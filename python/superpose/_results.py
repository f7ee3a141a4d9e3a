"""Results as Python holds them: a run directory (the command line's, or one the package wrote)
read into numpy arrays and pandas DataFrames — Run, Sweep, PhaseDiagram, Experiments, Tms — and
load(), which picks the class by the directory's manifest."""
from __future__ import annotations

import errno
import importlib
import io
import json
import os
import re
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


def load(path, squeeze: bool = True) -> Any:
    """Any run directory the command line (or this module, with out=) wrote: a Run, Sweep,
    PhaseDiagram, Experiments or Tms, by its manifest's command. squeeze=False keeps a sweep's
    axes of one value as dimensions of length 1."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(errno.ENOENT if not path.exists() else errno.ENOTDIR,
                                "not a superpose run directory (no such directory)", str(path))
    manifest_file = path / "manifest.json"
    if (path / "tms.json").exists():
        result = Tms._load(path, squeeze)
        result.path = path
        return result
    if not manifest_file.exists():
        if (path / configuration_dir(0)).is_dir():
            raise ValueError(f"'{path}' holds the sweeps of superpose.configurations(): call it "
                             f"again with the same list and out='{path}' to load them (nothing "
                             f"trained is trained again), or superpose.load('{path}/config-...')")
        if (path / "sweep.json").exists():
            raise ValueError(f"'{path}' holds a sweep that is not merged yet: run "
                             f"superpose.merge('{path}') once every shard has finished")
        raise ValueError(f"'{path}' is not a superpose run directory (no manifest.json)")
    command = _json(manifest_file)["command"]
    kind = {"train": Run, "sweep": Sweep, "tms": Sweep, "phase-diagram": PhaseDiagram,
            "experiments": Experiments}.get(command)
    if kind is None:
        raise ValueError(f"'{path}': unknown command '{command}' in its manifest")
    result = kind._load(path, squeeze) if issubclass(kind, Sweep) else kind._load(path)
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
    # The engine trains in float32; results.csv holds those floats exactly. C order (a DataFrame's
    # block is column-major), so that W is one block of memory torch can share (to_torch).
    return (W.astype(np.float32, order="C").reshape(len(results), m, n),
            b.astype(np.float32, order="C"))


def _npy(path: Path) -> Optional[np.ndarray]:
    return np.load(io.BytesIO(_read_bytes(path))) if path.exists() else None


def _axis_values(axis: Dict[str, Any]) -> List[float]:
    """An axis's values: listed, or from the generator the manifest keeps for a generated axis
    (the engine's own parser computes them: the same doubles)."""
    return axis["values"] if "values" in axis else _core.axis_values(axis["generator"])


def _torch():
    """torch, imported only where tensors are asked for (an optional dependency: imported by name,
    so that type checkers without it installed do not stop at it)."""
    try:
        return importlib.import_module("torch")
    except ImportError:
        raise ImportError("to_torch() and state_dict() need torch: pip install torch") from None


def _tensors(W: np.ndarray, b: np.ndarray, instances: bool):
    """W and b as torch tensors sharing the arrays' memory (torch.from_numpy: no copy): as they
    are, or (instances) as ARENA's ToyModel/NeuronModel state dict — W (instances, m, n) and b_final
    (instances, n), the models in model-id order."""
    torch = _torch()
    W, b = np.ascontiguousarray(W), np.ascontiguousarray(b)
    if instances:
        m, n = W.shape[-2:]
        return {"W": torch.from_numpy(W.reshape(-1, m, n)),
                "b_final": torch.from_numpy(b.reshape(-1, n))}
    return {"W": torch.from_numpy(W), "b": torch.from_numpy(b)}


@dataclass(repr=False)
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

    def to_torch(self) -> Dict[str, Any]:
        """{"W": (m, n), "b": (n,)} as torch tensors sharing this run's memory."""
        return _tensors(self.W, self.b, instances=False)

    def state_dict(self) -> Dict[str, Any]:
        """ARENA's ToyModel / NeuronModel state dict of one instance: {"W": (1, m, n),
        "b_final": (1, n)}, as torch tensors."""
        return _tensors(self.W, self.b, instances=True)

    def __repr__(self) -> str:
        m, n = self.W.shape
        loss = self.results["eval_loss"].iloc[0] if "eval_loss" in self.results else float("nan")
        return (f"<superpose.Run: {n} features -> {m} hidden, {len(self.train_loss)} steps, "
                f"eval_loss {loss:.6g}{_where(self.path)}>")


# Axes whose values are whole numbers by nature: their coordinates are integers.
_INTEGER_AXES = {"steps", "seed"}


def _axis_array(axis: Dict[str, Any]) -> np.ndarray:
    if "labels" in axis:
        return np.array(axis["labels"])
    values = np.array(_axis_values(axis), dtype=np.float64)
    if axis["name"] in _INTEGER_AXES and np.all(values == np.round(values)):
        return values.astype(np.int64)
    return values


def _per_feature(columns, n: int) -> Dict[str, List[str]]:
    """The per-feature statistics among results' columns (norm_0 ... norm_{n-1}): name -> columns."""
    found = {}
    for column in columns:
        match = re.fullmatch(r"([a-z_]+?)_0", column)
        if match and match.group(1) not in ("W", "b"):
            names = [f"{match.group(1)}_{f}" for f in range(n)]
            if all(name in columns for name in names):
                found[match.group(1)] = names
    return found


def _where(path: Optional[Path]) -> str:
    """Where a result lives, for its repr."""
    return f", at '{path}'" if path is not None else ", in memory"


def _summary(kind: str, shape, axes: Dict[str, np.ndarray], extra: str, path) -> str:
    swept = " x ".join(f"{name} ({len(values)})" for name, values in axes.items()) or "no axis"
    models = int(np.prod(shape)) if len(shape) else 1
    return f"<superpose.{kind}: {models:,} models over {swept}; {extra}{_where(path)}>"


@dataclass(repr=False)
class Sweep:
    """A sweep: its results as a DataFrame, and W, b with the swept axes as leading dimensions.

    With squeeze (the default) an axis of one value is not a dimension: it is in `settings`;
    squeeze=False keeps every axis the command has (model, steps, lr, ...), in its order."""
    results: pd.DataFrame         # one row per model, by model_id: results.csv's values, and a
                                  # column for every axis (density, importance_decay, ...)
    W: np.ndarray                 # shape + (m, n), float32
    b: np.ndarray                 # shape + (n,)
    axes: Dict[str, np.ndarray]   # name -> values (labels for the model kind), slowest first
    shape: tuple
    manifest: Dict[str, Any]
    trajectories: Dict[str, np.ndarray] = field(default_factory=dict)  # with trajectories=True
    path: Optional[Path] = None
    log: str = ""
    settings: Dict[str, Any] = field(default_factory=dict)  # the axes of one value (squeezed)
    trajectory_steps: Dict[str, np.ndarray] = field(default_factory=dict)  # their step indices

    @classmethod
    def _load(cls, path: Path, squeeze: bool = True):
        path = Path(path)
        manifest = _json(path / "manifest.json")
        results = _read_results(path / "results.csv").sort_values("model_id", ignore_index=True)
        every = {a["name"]: _axis_array(a) for a in manifest["axes"]}
        # Every axis is a column, each model's value (model ids are row-major over the axes).
        index = np.unravel_index(results["model_id"].to_numpy(), tuple(manifest["shape"]))
        columns = {}  # after model_id, in the axes' order; joined at once (a frame of many
        for (name, values), position in zip(every.items(), index):  # columns warns per insert)
            column = values[position]
            if name in results.columns:
                if np.array_equal(results[name].to_numpy(), column):
                    continue
                # results.csv's column of that name is something else (its sparsity is the mean
                # over features, which a varied-sparsity axis moves): the axis gets its own.
                name = f"{name}_axis"
            columns[name] = column
        if columns:
            results = pd.concat([results.iloc[:, :1], pd.DataFrame(columns, index=results.index),
                                 results.iloc[:, 1:]], axis=1)
        axes = {k: v for k, v in every.items() if not squeeze or len(v) > 1}
        settings = {k: v[0].item() for k, v in every.items() if squeeze and len(v) == 1}
        shape = tuple(len(v) for v in axes.values())
        n, m = int(manifest["group"]["n_features"]), int(manifest["group"]["n_hidden"])
        W, b = _parameters(results, n, m)
        trajectories, steps = {}, {}
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
                steps[name] = _trajectory_steps(chunks, name, longest)
        return cls(results=results, W=W.reshape(shape + (m, n)), b=b.reshape(shape + (n,)),
                   axes=axes, shape=shape, manifest=manifest, trajectories=trajectories,
                   settings=settings, trajectory_steps=steps)

    def __repr__(self) -> str:
        m, n = self.W.shape[-2:]
        extra = f"{n} features -> {m} hidden, backend {self.manifest.get('backend', '?')}"
        if self.trajectories:
            extra += ", trajectories"
        return _summary(type(self).__name__, self.shape, self.axes, extra, self.path)

    def to_torch(self) -> Dict[str, Any]:
        """{"W": shape + (m, n), "b": shape + (n,)} as torch tensors sharing this sweep's memory."""
        return _tensors(self.W, self.b, instances=False)

    def state_dict(self) -> Dict[str, Any]:
        """ARENA's ToyModel / NeuronModel state dict: {"W": (models, m, n), "b_final": (models, n)},
        the models in model-id order (row-major over the axes), as torch tensors —
        `model.load_state_dict(sweep.state_dict())` for a model of that many instances."""
        return _tensors(self.W, self.b, instances=True)

    def best(self, over: str = "seed", by: str = "eval_loss", mode: str = "min") -> "Sweep":
        """The sweep with axis `over` reduced to the model that is best by results' column `by`
        (its lowest, or with mode="max" its highest; a NaN never wins): W, b, results and
        trajectories of that model, for every setting of the other axes."""
        if over not in self.axes:
            raise ValueError(f"best: '{over}' is not an axis of this sweep (its axes: "
                             f"{', '.join(self.axes) or 'none'})")
        if by not in self.results.columns:
            raise ValueError(f"best: no column '{by}' in results")
        if mode not in ("min", "max"):
            raise ValueError(f"best: mode is 'min' or 'max', not {mode!r}")
        axis = list(self.axes).index(over)
        metric = self.results[by].to_numpy(np.float64).reshape(self.shape)
        metric = np.where(np.isnan(metric), np.inf, metric if mode == "min" else -metric)
        pick = np.expand_dims(np.argmin(metric, axis=axis), axis)

        def take(array: np.ndarray) -> np.ndarray:
            index = pick.reshape(pick.shape + (1,) * (array.ndim - len(self.shape)))
            return np.take_along_axis(array, index, axis=axis).squeeze(axis)

        rows = take(np.arange(len(self.results)).reshape(self.shape)).ravel()
        axes = {k: v for k, v in self.axes.items() if k != over}
        return type(self)(**{**{f: getattr(self, f) for f in self.__dataclass_fields__},
                             "results": self.results.iloc[rows].reset_index(drop=True),
                             "W": take(self.W), "b": take(self.b), "axes": axes,
                             "shape": tuple(len(v) for v in axes.values()),
                             "trajectories": {k: take(v) for k, v in self.trajectories.items()}})

    def to_xarray(self):
        """The results as an xarray.Dataset over the sweep's labelled axes: every number column,
        per-feature statistics (norm, interference, ...) along a feature dimension, W and b, and
        the trajectories along their steps (pip install xarray, or superpose[notebook])."""
        try:
            import xarray as xr
        except ImportError:
            raise ImportError("to_xarray() needs xarray: pip install xarray (or "
                              "'superpose[notebook]')") from None
        dims = list(self.axes)
        m, n = self.W.shape[-2:]
        data = {}
        per_feature = _per_feature(self.results.columns, n)
        in_features = {c for names in per_feature.values() for c in names}
        for column in self.results.columns:
            values = self.results[column].to_numpy()
            name = column
            if column in self.axes and f"{column}_axis" in self.results.columns:
                # results.csv's column of an axis's name holds something else (the seeds' stream
                # keys with --cell-streams independent; the mean sparsity over a varied one): kept
                # under its own name, the axis being the coordinate.
                name = "seed_key" if column == "seed" else f"{column}_column"
            elif column in self.axes or (column.endswith("_axis")
                                         and column[:-len("_axis")] in self.axes):
                continue  # the coordinate
            if column != "model_id" and column not in in_features \
                    and not re.fullmatch(r"W_\d+_\d+|b_\d+", column) \
                    and np.issubdtype(values.dtype, np.number):
                data[name] = (dims, values.reshape(self.shape))
        for name, columns in per_feature.items():
            # Per feature, under its own name unless an axis or a column has it (the sparsity
            # axis, results' mean sparsity): then feature_<name>.
            if name in self.axes or name in data:
                name = f"feature_{name}"
            data[name] = (dims + ["feature"],
                          self.results[columns].to_numpy().reshape(self.shape + (n,)))
        data["W"] = (dims + ["hidden", "feature"], self.W)
        data["b"] = (dims + ["feature"], self.b)
        coords = {name: values for name, values in self.axes.items()}
        coords.update(hidden=np.arange(m), feature=np.arange(n))
        for name, array in self.trajectories.items():
            step = {"train_loss": "step", "eval_loss": "eval_step"}.get(name, "snapshot_step")
            tail = {"W": ["hidden", "feature"], "b": ["feature"]}.get(name, [])
            data[f"{name}_trajectory" if name in ("W", "b") else f"{name}_curve"] = \
                (dims + [step] + tail, array)
            coords[step] = self.trajectory_steps[name]
        return xr.Dataset(data, coords=coords,
                          attrs={"command": self.manifest.get("command", ""),
                                 **{k: v for k, v in self.settings.items()}})


def _trajectory_steps(chunks, name: str, length: int) -> np.ndarray:
    """The steps a trajectory's entries were taken at (the longest chunk's, where a steps axis
    makes them differ): every step for the loss, eval_steps / snapshot_steps for the others."""
    if name == "train_loss":
        return np.arange(length)
    file = "eval_steps.npy" if name == "eval_loss" else "snapshot_steps.npy"
    for c in chunks:
        steps = _npy(c / file)
        if steps is not None and len(steps) == length:
            return steps.astype(np.int64)
    return np.arange(length)


@dataclass(repr=False)
class PhaseDiagram(Sweep):
    """A phase diagram: the sweep, and phase_diagram.csv's cells."""
    cells: Optional[pd.DataFrame] = None

    @classmethod
    def _load(cls, path: Path, squeeze: bool = True):
        sweep = Sweep._load(path, squeeze)
        cells = _read_csv(Path(path) / "phase_diagram.csv")
        return cls(**{f: getattr(sweep, f) for f in Sweep.__dataclass_fields__}, cells=cells)


@dataclass(repr=False)
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

    def __repr__(self) -> str:
        return (f"<superpose.Experiments: {len(self.summary)} experiments, {len(self.results):,} "
                f"models, examples {sorted(self.examples)}{_where(self.path)}>")


@dataclass(repr=False)
class Tms:
    """`superpose tms`: each result's sweep by name, and the verdicts — one row per result: name,
    title, shows (whether its trained W shows what the paper reports) and the measured lines; and
    the outcomes — one row per thing a verdict judges on the best seed of a cell, counted over
    every seed: name, what, seeds, shown, fraction."""
    results: Dict[str, Sweep]
    verdicts: pd.DataFrame
    report: Dict[str, Any]
    path: Optional[Path] = None
    log: str = ""
    outcomes: pd.DataFrame = field(default_factory=pd.DataFrame)

    @classmethod
    def _load(cls, path: Path, squeeze: bool = True) -> "Tms":
        path = Path(path)
        report = _json(path / "tms.json")
        results = {e["name"]: Sweep._load(path / e["dir"], squeeze)
                   for e in report["experiments"]}
        verdicts = pd.DataFrame([{"name": e["name"], "title": e["title"], "shows": e["shows"],
                                  "lines": "\n".join(e["lines"])}
                                 for e in report["experiments"]])
        outcomes = pd.DataFrame([{"name": e["name"], **o} for e in report["experiments"]
                                 for o in e.get("outcomes", [])],  # older tms.json: none
                                columns=["name", "what", "seeds", "shown", "fraction"])
        return cls(results=results, verdicts=verdicts, report=report, outcomes=outcomes)

    def __repr__(self) -> str:
        shown = ", ".join(f"{row.name} {'shows' if row.shows else 'DOES NOT show'}"
                          for row in self.verdicts.itertuples())
        return f"<superpose.Tms: {len(self.results)} results ({shown}){_where(self.path)}>"


@dataclass(repr=False)
class Configurations:
    """Models over an explicit list of configurations (superpose.configurations): one sweep per
    configuration (its seeds, and any axis given to every one), in the list's order. Under out=,
    configuration k's sweep is out/config-<k, 6 digits>: a run directory of its own (load it with
    superpose.load; call configurations() again with the same list to resume or reload them all)."""
    configurations: pd.DataFrame  # one row per configuration: the options it sets
    sweeps: List[Sweep]           # configuration k's sweep
    path: Optional[Path] = None
    log: str = ""

    @property
    def results(self) -> pd.DataFrame:
        """Every model's row: `configuration` (its index in the list), the options the list sets
        where results has no column of theirs, then its sweep's results."""
        frames = []
        for k, sweep in enumerate(self.sweeps):
            frame = sweep.results.copy()
            frame.insert(0, "configuration", k)
            at = 1
            for key, value in self.configurations.iloc[k].items():
                if key not in frame.columns and not (isinstance(value, float) and np.isnan(value)):
                    frame.insert(at, key, value)
                    at += 1
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def _stacked(self, name: str) -> np.ndarray:
        arrays = [getattr(s, name) for s in self.sweeps]
        if any(a.shape != arrays[0].shape for a in arrays):
            raise ValueError(f"{name}: the configurations have different shapes "
                             f"({sorted({a.shape for a in arrays})}): use .sweeps[k].{name}")
        return np.stack(arrays)

    @property
    def W(self) -> np.ndarray:
        """(configurations,) + each sweep's W, where every configuration has the same shape."""
        return self._stacked("W")

    @property
    def b(self) -> np.ndarray:
        return self._stacked("b")

    def __repr__(self) -> str:
        models = sum(len(s.results) for s in self.sweeps)
        return (f"<superpose.Configurations: {len(self.sweeps)} configurations, {models:,} models; "
                f"options set: {', '.join(self.configurations.columns) or 'none'}"
                f"{_where(self.path)}>")



def configuration_dir(k: int) -> str:
    """Where configuration k's sweep lives under configurations(out=...)."""
    return f"config-{k:06d}"
