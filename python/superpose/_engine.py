"""How a command runs: Python values as the command line's text, scratch directories in memory
(removed on return, on SIGTERM, or by the next call where a process was killed), the engine's job
on a thread of its own with a progress bar and Ctrl-C, and its messages as Python exceptions."""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from . import _core
from ._options import Command

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
    try:
        if isinstance(value, np.ndarray):
            value = value.ravel().tolist()
        if isinstance(value, (list, tuple)):
            if not value:
                return ""  # the command line's message for an empty value
            return ",".join(v if isinstance(v, str) else _number(v) for v in value)
        return _number(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}={value!r}: expected a number, a list of numbers, a numpy array, a "
                        "range or a string") from None


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


def _as_array(value: Any) -> np.ndarray:
    """Anything numpy.asarray takes, and a torch tensor as it is (one that requires grad, or on
    a GPU, too: its values are what is meant)."""
    if hasattr(value, "detach") and callable(value.detach):
        value = value.detach()
        if hasattr(value, "cpu"):
            value = value.cpu()
    return np.asarray(value)


def _arguments(command: Command, options: Dict[str, Any], scratch: Path) -> List[str]:
    """The command line of a call: each keyword as its option (the table's spelling) and text."""
    args = [command.name]
    for key, value in options.items():
        if value is None:
            continue
        row = command.options[key]
        if row.kind == "FLAG":
            if _flag(key, value):
                args.append(row.option)
            continue
        if row.kind == "NPY" and not isinstance(value, (str, os.PathLike)):
            value = _array_file(key, _as_array(value), scratch / f"{key}.npy")
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, (str, range, list, tuple, np.ndarray, int, float, np.number)) \
                and (hasattr(value, "__array__") or hasattr(value, "detach")):
            value = _as_array(value)  # a torch tensor, a JAX array, an xarray DataArray
        args += [row.option, _option_text(key, value)]
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


def _engine_message(message: str, scratch: Path, command: Command) -> str:
    """The engine's message as a Python caller reads it: the keyword for each option it names,
    and the argument for a scratch file that stands in for an array."""
    for key, row in command.options.items():
        if row.kind == "NPY":
            message = message.replace(f"'{scratch / (key + '.npy')}'", f"the array given as {key}=")
    # Outside quoted text (a path may hold "--lr"), an option of this command as a word.
    parts = re.split(r"('[^']*')", message)
    for k in range(0, len(parts), 2):
        parts[k] = re.sub(r"(^|[\s(,])(--[a-zA-Z][a-zA-Z0-9-]*)(?=$|[\s:),.;])",
                          lambda m: m.group(1) + (command.keyword_of(m.group(2)) or m.group(2)),
                          parts[k])
    return "".join(parts)


_NOT_ON_THE_GPU = "superpose: not using the CUDA device: "


def _warn_if_not_on_the_gpu(err: str, stacklevel: int = 2) -> None:
    """backend="auto" with a GPU here that this build cannot use: the engine says why on stderr,
    which a notebook never shows; a warning does."""
    for line in err.splitlines():
        if line.startswith(_NOT_ON_THE_GPU):
            warnings.warn("superpose trained on the CPU, not on this machine's GPU: " +
                          line[len(_NOT_ON_THE_GPU):], RuntimeWarning, stacklevel=stacklevel)


def _models_done(progress: List[int]):
    """(models done, models in all) for the bar: from the model-steps the backends report, so that
    it moves within a chunk (a chunk of one long model too), else from the finished chunks."""
    done, total, work_done, work_total = progress
    if work_total > 0:
        return min(float(total), total * work_done / work_total), total
    return float(done), total


def _execute(args: List[str], show_progress: bool, scratch: Optional[Path] = None,
             command: Optional[Command] = None, stacklevel: int = 4) -> _core.Job:
    """Runs the command on the engine's thread; KeyboardInterrupt stops it and is raised.
    stacklevel: the caller's frame a warning names (4: the caller of the function calling this)."""
    job = _core.Job(args)
    _running.append(job)
    bar = None
    try:
        while not job.wait(0.1):
            if show_progress:
                done, total = _models_done(job.progress())
                if total > 0:
                    if bar is None:
                        from tqdm.auto import tqdm
                        bar = tqdm(total=total, unit="model", desc=args[0],
                                   bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} models "
                                              "[{elapsed}<{remaining}]")
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
            done, _ = _models_done(job.progress())
            bar.update(done - bar.n)
            bar.close()
    status = job.status()
    _warn_if_not_on_the_gpu(job.err(), stacklevel)
    if status == 2:
        message = job.err().strip().splitlines()[-1] if job.err().strip() else "bad input"
        message = message.removeprefix("superpose: error: ")
        raise ValueError(_engine_message(message, scratch, command) if command else message)
    if status not in (0, 1) or (status == 1 and args[0] != "train"):
        raise RuntimeError(job.err().strip() or f"superpose {args[0]} failed (status {status})")
    return job


@dataclass
class ShardRun:
    """What a shard (shard="K/N" or "auto") trained into `path`: the sweep is loaded by
    superpose.merge(path) once every shard has finished."""
    path: Path
    log: str = ""


def _run(command: Command, options: Dict[str, Any], load_as, progress: bool):
    _flag("progress", progress)
    out = options.pop("out", None)
    if options.get("shard") is not None and out is None:
        raise ValueError("shard: needs out=, the directory every shard shares")
    scratch = Path(_memory_dir())
    try:
        if options.get("shard") is not None:
            job = _execute(_arguments(command, options, scratch) + ["--out", os.fspath(out)],
                           progress, scratch, command, stacklevel=5)
            return ShardRun(path=Path(out), log=job.out())
        target = Path(out) if out is not None else scratch / "run"
        args = _arguments(command, options, scratch) + ["--out", str(target)]
        job = _execute(args, progress, scratch, command, stacklevel=5)
        result = load_as(target)
        result.log = job.out()
        result.path = Path(out) if out is not None else None
        return result
    finally:
        _remove_scratch(str(scratch))
