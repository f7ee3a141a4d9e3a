"""The functions that run a command — train, sweep, experiments, phase_diagram, tms — built at
import from the engine's option table (superpose/_options.py): each has a real keyword parameter
for every option of its command, with its type, default and help, and refuses a keyword the
command does not have with a TypeError that suggests the nearest. The stub beside this file
(_commands.pyi, written at build time from the same table) gives editors and type checkers the
same signatures. merge runs `superpose merge`."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, List

import pandas as pd

from . import _core
from ._engine import _execute, _flag, _run
from ._options import FUNCTIONS, Command, commands
from ._results import (Configurations, Experiments, PhaseDiagram, Run, Sweep, Tms,
                       configuration_dir, load)

COMMANDS: Dict[str, Command] = commands(_core.options_json())
_RESULTS = {"Run": Run, "Sweep": Sweep, "Experiments": Experiments,
            "PhaseDiagram": PhaseDiagram, "Tms": Tms}


def _function(name: str) -> Callable[..., Any]:
    command = COMMANDS[name]
    returns, progress_default, squeezes, summary = FUNCTIONS[name]
    result = _RESULTS[returns]

    def run(**given: Any) -> Any:
        options = command.bind(given, squeezes)
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


def _missing(value: Any) -> bool:
    """None, NaN, or pandas' NA: a value a DataFrame row does not have."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or \
        type(value).__name__ in ("NAType", "NaTType")


def _configuration_rows(configurations: Any) -> List[Dict[str, Any]]:
    """A DataFrame's rows or a list of dicts, as option dicts (a DataFrame's missing value, NaN or
    None, is an option that configuration does not set)."""
    if hasattr(configurations, "to_dict") and hasattr(configurations, "columns"):
        configurations = configurations.to_dict("records")
    rows = []
    for k, row in enumerate(configurations):
        if not isinstance(row, dict):
            raise TypeError(f"configurations: item {k} is a {type(row).__name__}, not a dict of "
                            "options (or give a DataFrame, one row a configuration)")
        rows.append({key: value for key, value in row.items() if not _missing(value)})
    if not rows:
        raise ValueError("configurations: the list is empty")
    return rows


def configurations(configurations: Any, *, progress: bool = True, out: Any = None,
                   squeeze: bool = True, **options: Any) -> Configurations:
    """Models over an explicit list of configurations, not a Cartesian product: "these 37
    settings, 10 seeds each" is `configurations(settings, seed=range(10), steps=5000, ...)`.

    `configurations` is a list of dicts or a pandas DataFrame, one configuration each, whose keys
    are `sweep`'s keywords (aliases too); keywords given here apply to every configuration (an
    axis given here, such as seed=range(10), is swept within each). A configuration may not set
    what a keyword here sets. Each configuration is one sweep, in the list's order; with out=,
    configuration k's is out/config-<k, 6 digits> (resumable: calling this again with the same
    list and out= trains only what is missing). Returns Configurations: `results` (every model's
    row with its `configuration` index and the options it set), `W` and `b` stacked over the
    configurations where their shapes agree, `sweeps`, `configurations` (the list as a
    DataFrame)."""
    _flag("progress", progress)
    if options.get("shard") is not None:
        raise TypeError("configurations: shard= is a sweep's (each configuration is a sweep of its "
                        "own: shard a long list by giving each process a part of it)")
    rows = _configuration_rows(configurations)
    command = COMMANDS["sweep"]
    common = command.bind(options, True)
    for k, row in enumerate(rows):
        try:
            own = command.bind(row, True)
        except TypeError as error:
            raise TypeError(f"configuration {k}: {error}") from None
        both = sorted(set(own) & set(common))
        if both:
            raise TypeError(f"configurations: configuration {k} sets {', '.join(both)}, which the "
                            "keywords set for every configuration")
        for key in row:
            if key in ("out", "progress", "squeeze", "shard"):
                raise TypeError(f"configurations: configuration {k} sets {key}, which is the "
                                "call's, not a configuration's")
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(rows), unit="configuration", desc="configurations")
    sweeps, logs = [], []
    try:
        for k, row in enumerate(rows):
            target = None if out is None else Path(out) / configuration_dir(k)
            try:
                result = sweep(**options, **row, out=target, progress=False, squeeze=squeeze)
            except (TypeError, ValueError) as error:
                raise type(error)(f"configuration {k}: {error}") from None
            sweeps.append(result)
            logs.append(result.log)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return Configurations(configurations=pd.DataFrame(rows), sweeps=sweeps,
                          path=None if out is None else Path(out), log="".join(logs))

