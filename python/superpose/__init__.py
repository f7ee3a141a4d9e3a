"""superpose — toy models of superposition, thousands at a time, from Python.

The functions are the command line's commands, their keyword arguments its options (dashes become
underscores), run by the same engine (the extension superpose._core runs the command as written:
the same checks, backends and bits). Results come back as numpy arrays and pandas DataFrames:

    import superpose
    run = superpose.train(model="relu", sparsity=0.8, importance=[1, 1], lr=3e-4, steps=10_000)
    run.W, run.b, run.train_loss                       # (1, 2) float32, (2,), per step
    sweep = superpose.sweep(features=20, hidden=5, data_mode="fresh", steps=5000,
                            density=np.logspace(-2, 0, 12), importance_decay=0.9, seed=range(3))
    sweep.results                                      # results.csv as a DataFrame
    sweep.W.shape                                      # sweep.shape + (5, 20): the axes first

Axis options take a number, a list, a numpy array, a range, or the command line's strings
("logspace(-2,0,12)"). `data=`, `init_W=`, `init_b=` take numpy arrays. `out=` writes the same run
directory as the command line (and a sweep there resumes); without it the run goes to a temporary
directory in memory (/dev/shm where there is one), deleted once its results are loaded — also when
the process is ended by SIGTERM (what Slurm sends at a time limit), and a scratch directory that a
killed process left is reclaimed by the next call. Bad input raises ValueError with the command
line's message, naming the keyword (TypeError for a value of the wrong type, such as
overwrite="False"). The GIL is released while training; a progress bar shows in a notebook or
terminal; Ctrl-C (KeyboardInterrupt) stops the run at its next step, and a sweep stopped so resumes
when called again with the same `out=`.
"""
from __future__ import annotations

import fcntl
import io
import json
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from . import _core

__all__ = ["train", "sweep", "experiments", "phase_diagram", "tms", "merge", "load", "Run",
           "Sweep", "Experiments", "PhaseDiagram", "Tms", "ShardRun", "__version__"]
__version__ = _core.version

# ----------------------------------------------------------------------------------- options


def _number(value: Any) -> str:
    """A number as the command line reads it back to the same double."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("a boolean is not a number here")
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return repr(float(value))


def _option_text(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, range):
        return f"range({value.start},{value.stop},{value.step})"
    if isinstance(value, np.ndarray):
        value = value.ravel().tolist()
    if isinstance(value, (list, tuple)):
        if not value:
            return ""  # the command line's message for an empty value
        return ",".join(v if isinstance(v, str) else _number(v) for v in value)
    try:
        return _number(value)
    except TypeError:
        raise TypeError(f"{name}={value!r}: expected a number, a list, a numpy array, a range or a "
                        "string") from None


_FLAGS = {"trajectories", "overwrite"}
_ARRAYS = {"data", "init_W", "init_b"}


def _flag(name: str, value: Any) -> bool:
    """A boolean option: True or False only (overwrite="False" is not a request to overwrite)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}= takes True or False, not {value!r}")
    return bool(value)


def _array_file(name: str, value: Any, path: Path) -> str:
    """An array option (data=, init_W=, init_b=) as the .npy file the engine reads: real numbers
    in this machine's byte order (a big-endian or integer array is converted, not refused)."""
    array = np.asarray(value)
    if array.dtype.kind in "biu":
        array = array.astype(np.float64)
    elif array.dtype.kind == "f":
        if array.dtype.itemsize not in (4, 8):
            array = array.astype(np.float64)
        array = array.astype(array.dtype.newbyteorder("="), copy=False)
    else:
        raise TypeError(f"{name}= takes an array of real numbers, not one of dtype {array.dtype}")
    np.save(path, np.ascontiguousarray(array))
    return str(path)


def _arguments(command: str, options: Dict[str, Any], scratch: Path) -> List[str]:
    args = [command]
    for key, value in options.items():
        if value is None:
            continue
        option = "--" + key.replace("_", "-")
        if key in _FLAGS:
            if _flag(key, value):
                args.append(option)
            continue
        if key in _ARRAYS and not isinstance(value, (str, os.PathLike)):
            value = _array_file(key, value, scratch / f"{key}.npy")
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        args += [option, _option_text(key, value)]
    return args


# Scratch directories (a run without out=, and the arrays handed to the engine): in memory where
# /dev/shm is, each holding an flock on its .owner.lock for as long as its process lives. They are
# removed when the call returns, on SIGTERM, and — where a process was killed outright — by the
# next call in any process of this user, which finds the lock free.
_SCRATCH_PREFIX = "superpose-"
_scratch_lock = threading.RLock()  # reentrant: the SIGTERM handler may run while it is held
_scratch_live: Dict[str, int] = {}
_sigterm_installed = False


def _scratch_parent() -> Optional[str]:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _reclaim_stale(parent: Optional[str]) -> None:
    """Removes this user's scratch directories whose process is gone (their lock is free)."""
    parent = parent or tempfile.gettempdir()
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        # A directory killed while being made (before its rename) is left a minute, past any
        # maker's few microseconds between making it and locking it.
        making = name.startswith("." + _SCRATCH_PREFIX + "making-")
        if not name.startswith(_SCRATCH_PREFIX) and not making:
            continue
        path = os.path.join(parent, name)
        try:
            info = os.lstat(path)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or path in _scratch_live:
                continue
            if making and time.time() - info.st_mtime < 60:
                continue
            fd = os.open(os.path.join(path, ".owner.lock"), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue  # not ours, not a scratch directory, or one being made
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its process is alive
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


_running: List[Any] = []  # the job the engine runs now, if any


def _on_sigterm(signum, frame):
    """SIGTERM (Slurm's time limit, `kill`): the running job stops (a sweep keeps its finished
    chunks), the scratch directories go, then the signal's default action ends the process as it
    would have."""
    for job in list(_running):
        job.cancel()
        job.wait(10.0)
    _remove_all_scratch()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _install_sigterm() -> None:
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    _sigterm_installed = True
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:  # never over a handler of yours
        signal.signal(signal.SIGTERM, _on_sigterm)


def _memory_dir() -> str:
    parent = _scratch_parent()
    _reclaim_stale(parent)
    # Made and locked under a name no reclaimer looks at, then renamed to its own: a scratch
    # directory is never seen with its lock free while its process lives.
    making = tempfile.mkdtemp(prefix=f".{_SCRATCH_PREFIX}making-{os.getpid()}-", dir=parent)
    fd = os.open(os.path.join(making, ".owner.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    path = os.path.join(os.path.dirname(making),
                        _SCRATCH_PREFIX + os.path.basename(making)[len(_SCRATCH_PREFIX) + 8:])
    os.rename(making, path)
    with _scratch_lock:
        _scratch_live[path] = fd
    _install_sigterm()
    return path


def _forget_in_child() -> None:
    """A forked child owns neither its parent's scratch nor its job: it forgets them (the parent's
    locks stay the parent's: a child closing its copy releases nothing)."""
    global _scratch_lock
    _scratch_lock = threading.RLock()
    for fd in _scratch_live.values():
        os.close(fd)
    _scratch_live.clear()
    _running.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def _remove_scratch(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    with _scratch_lock:
        fd = _scratch_live.pop(path, None)
    if fd is not None:
        os.close(fd)


def _remove_all_scratch() -> None:
    with _scratch_lock:
        paths = list(_scratch_live)
    for path in paths:
        _remove_scratch(path)


def _engine_message(message: str, scratch: Path) -> str:
    """The engine's message as a Python caller reads it: the keyword for the option it names, and
    the argument for a scratch file that stands in for an array."""
    for key in _ARRAYS:
        message = message.replace(f"'{scratch / (key + '.npy')}'", f"the array given as {key}=")
    match = re.match(r"--([a-z][a-z0-9-]*): ", message)
    if match:
        message = match.group(1).replace("-", "_") + ": " + message[match.end():]
    return message


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


# ----------------------------------------------------------------------------------- running


def _execute(args: List[str], show_progress: bool, scratch: Optional[Path] = None) -> _core.Job:
    """Runs the command on the engine's thread; KeyboardInterrupt stops it and is raised."""
    job = _core.Job(args)
    _running.append(job)
    bar = None
    try:
        while not job.wait(0.1):
            if show_progress:
                done, total = job.progress()
                if total > 0:
                    if bar is None:
                        from tqdm.auto import tqdm
                        bar = tqdm(total=total, unit="model", desc=args[0])
                    bar.update(done - bar.n)
    except BaseException:  # Ctrl-C, or anything else: the engine stops before this returns
        job.cancel()
        while True:
            try:
                if job.wait(0.5):
                    break
            except KeyboardInterrupt:  # a second Ctrl-C while it stops: it is stopping already
                job.cancel()
        raise
    finally:
        _running.remove(job)
        if bar is not None:
            done, _ = job.progress()
            bar.update(done - bar.n)
            bar.close()
    status = job.status()
    if status == 2:
        message = job.err().strip().splitlines()[-1] if job.err().strip() else "bad input"
        message = message.removeprefix("superpose: error: ")
        raise ValueError(_engine_message(message, scratch) if scratch else message)
    if status not in (0, 1) or (status == 1 and args[0] != "train"):
        raise RuntimeError(job.err().strip() or f"superpose {args[0]} failed (status {status})")
    return job


@dataclass
class ShardRun:
    """What a shard (shard="K/N" or "auto") trained into `path`: the sweep is loaded by
    superpose.merge(path) once every shard has finished."""
    path: Path
    log: str = ""


def _run(command: str, options: Dict[str, Any], load_as, progress: bool):
    _flag("progress", progress)
    out = options.pop("out", None)
    if options.get("shard") is not None and out is None:
        raise ValueError("shard: needs out=, the directory every shard shares")
    scratch = Path(_memory_dir())
    try:
        if options.get("shard") is not None:
            job = _execute(_arguments(command, options, scratch) + ["--out", str(out)], progress,
                           scratch)
            return ShardRun(path=Path(out), log=job.out())
        target = Path(out) if out is not None else scratch / "run"
        args = _arguments(command, options, scratch) + ["--out", str(target)]
        job = _execute(args, progress, scratch)
        result = load_as(target)
        result.log = job.out()
        result.path = Path(out) if out is not None else None
        return result
    finally:
        _remove_scratch(str(scratch))


def train(*, progress: bool = False, **options) -> "Run":
    """One model, as `superpose train`: keyword arguments are its options (model, features, hidden,
    sparsity, importance, lr, steps, seed, data_mode, points, batch, ..., backend, out);
    `data`, `init_W`, `init_b` take numpy arrays."""
    return _run("train", options, Run._load, progress)


def sweep(*, progress: bool = True, **options) -> "Sweep":
    """The Cartesian product of option axes, as `superpose sweep`."""
    return _run("sweep", options, Sweep._load, progress)


def experiments(*, progress: bool = True, **options) -> "Experiments":
    """The essay's six experiments over many seeds, as `superpose experiments`."""
    return _run("experiments", options, Experiments._load, progress)


def phase_diagram(*, progress: bool = True, **options) -> "PhaseDiagram":
    """Anthropic's 2 -> 1 phase diagram, as `superpose phase-diagram`."""
    return _run("phase-diagram", options, PhaseDiagram._load, progress)


def tms(*, progress: bool = True, **options) -> "Tms":
    """Toy Models of Superposition's main results, as `superpose tms` (scale, only, steps, ...)."""
    return _run("tms", options, Tms._load, progress)


def merge(path) -> "Sweep":
    """`superpose merge DIR`: a sweep trained in shards, assembled; the Sweep (or PhaseDiagram)."""
    job = _execute(["merge", os.fspath(path)], False)
    result = load(path)
    result.log = job.out()
    return result


def load(path) -> Any:
    """Any run directory the command line (or this module, with out=) wrote: a Run, Sweep,
    PhaseDiagram or Experiments, by its manifest's command."""
    path = Path(path)
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


# ----------------------------------------------------------------------------------- results


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

