"""The functions that run a command — train, sweep, experiments, phase_diagram, tms — built at
import from the engine's option table (superpose/_options.py): each has a real keyword parameter
for every option of its command, with its type, default and help, and refuses a keyword the
command does not have with a TypeError that suggests the nearest. The stub beside this file
(_commands.pyi, written at build time from the same table) gives editors and type checkers the
same signatures. merge runs `superpose merge`."""
from __future__ import annotations

import os
from typing import Any, Callable, Dict

from . import _core
from ._engine import _execute, _flag, _run
from ._options import FUNCTIONS, Command, commands
from ._results import Experiments, PhaseDiagram, Run, Sweep, Tms, load

COMMANDS: Dict[str, Command] = commands(_core.options_json())
_RESULTS = {"Run": Run, "Sweep": Sweep, "Experiments": Experiments,
            "PhaseDiagram": PhaseDiagram, "Tms": Tms}


def _function(name: str) -> Callable[..., Any]:
    command = COMMANDS[name]
    returns, progress_default, squeezes, summary = FUNCTIONS[name]
    result = _RESULTS[returns]

    def run(**given: Any) -> Any:
        options = command.bind(name, given, squeezes)
        progress = options.pop("progress", progress_default)
        if not squeezes:
            return _run(command, options, result._load, progress)
        squeeze = _flag("squeeze", options.pop("squeeze", True))
        return _run(command, options, lambda path: result._load(path, squeeze), progress)

    run.__name__ = run.__qualname__ = name
    run.__module__ = "superpose"
    run.__signature__ = command.signature(  # type: ignore[attr-defined]
        progress_default, squeezes, returns)
    run.__doc__ = command.docstring(progress_default, squeezes, returns, summary)
    return run


train = _function("train")
sweep = _function("sweep")
experiments = _function("experiments")
phase_diagram = _function("phase_diagram")
tms = _function("tms")


def merge(path) -> Sweep:
    """`superpose merge DIR`: a sweep trained in shards, assembled; the Sweep (or PhaseDiagram)."""
    job = _execute(["merge", os.fspath(path)], False)
    result = load(path)
    result.log = job.out()
    return result
