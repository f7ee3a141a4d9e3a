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

Every option is a keyword parameter with its type, default and help (`help(superpose.sweep)`),
built from the command line's own option table; an unknown keyword is a TypeError naming the
nearest. Axis options take a number, a list, a numpy array, a range, or the command line's strings
("logspace(-2,0,12)"). `data=`, `init_W=`, `init_b=` take arrays (numpy, torch tensors). `out=` writes the same run
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

from . import _core
from ._commands import configurations, experiments, merge, phase_diagram, sweep, tms, train
from ._engine import ShardRun
from ._results import Configurations, Experiments, PhaseDiagram, Run, Sweep, Tms, load

__all__ = ["train", "sweep", "configurations", "experiments", "phase_diagram", "tms", "merge",
           "load", "Run", "Sweep", "Configurations", "Experiments", "PhaseDiagram", "Tms",
           "ShardRun", "__version__"]
__version__ = _core.version
