"""The command line's options as Python keyword parameters.

Every function of the package that runs a command (train, sweep, experiments, phase_diagram, tms)
takes that command's options, and nothing is listed here by hand: the engine gives its one option
table (superpose._core.options_json, host/cli/cli.hpp: the same CLI11 options the command line
parses), and this module turns each row into a keyword parameter — its name (dashes become
underscores), its type, its default, its help — for the signature `help()` and editors show, the
docstring, the check of the keywords a call gives, and the stub `_commands.pyi` that type checkers
read (written at build time by running this file: `python _options.py CORE STUB`).

Only the standard library is imported here: the build runs it before numpy is installed.
"""
from __future__ import annotations

import difflib
import inspect
import json
import operator
import re
import sys
import textwrap
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

# What each kind of option (host/cli/options.hpp) takes from Python, as the stub's annotation.
ANNOTATIONS = {
    "FLAG": "bool",
    "INTEGER": "Integer",
    "NUMBER": "Number",
    "TEXT": "str",
    "AXIS": "Axis",
    "LIST": "Numbers",
    "NAMES": "Names",
    "NPY": "ArrayInput",
    "PATH": "PathInput",
}

# What the aliases of the stub mean (its header), and how the docstrings name them.
TYPE_ALIASES = """\
Integer = Union[int, np.integer]
Number = Union[int, float, np.integer, np.floating]
Pair = Union[Tuple[Number, Number], Sequence[Number], np.ndarray]
# An axis of a sweep: a value, a list, an array, a range, or the command line's text
# ("logspace(-2,0,12)", "range(0,100)", "linear,relu").
Axis = Union[Number, str, Sequence[Union[Number, str]], range, np.ndarray]
# Numbers, one or one per feature.
Numbers = Union[Number, str, Sequence[Number], np.ndarray]
Names = Union[str, Sequence[str]]
# An array: anything numpy.asarray takes (numpy, torch on the CPU, lists), or an .npy file.
ArrayInput = Union[np.ndarray, Sequence[Any], str, os.PathLike]
PathInput = Union[str, os.PathLike]
"""

# The names researchers already type (ARENA's exercises, the TMS notebook) for options that mean
# the same thing; an alias stands for its option only in commands that have that option.
ALIASES = {
    "n_features": "features",
    "n_hidden": "hidden",
    "d_hidden": "hidden",
    "feature_probability": "density",
    "batch_size": "batch",
    "n_instances": "seed",  # k instances: seed=range(k) (below)
}
ALIAS_NOTES = {
    "n_instances": "k models of each setting, as ARENA's n_inst: seed=range(k)",
}

# Python's own parameters, beside the command's options: name -> (annotation, help).
PROGRESS_HELP = "a progress bar (tqdm) while it runs"
SQUEEZE_HELP = ("an axis of one value is not a dimension of W, b and the trajectories (it is in "
                "`settings`); False keeps every axis the command has")
OUT_HELP = ("the run directory, as the command line writes it (a sweep there resumes); without "
            "it, a temporary directory in memory, deleted once the results are loaded")


@dataclass
class Option:
    name: str          # the Python keyword: density, init_W
    option: str        # the command line's: --density, --init-W
    kind: str          # FLAG, INTEGER, NUMBER, TEXT, AXIS, LIST, NAMES, NPY, PATH
    help: str
    default_text: str  # as --help shows it; "" where there is none
    values: int        # how many values it takes (2: a pair)
    recipe: bool       # set by --recipe unless given

    @property
    def annotation(self) -> str:
        if self.kind == "NUMBER" and self.values == 2:
            return "Pair"
        return ANNOTATIONS[self.kind]

    @property
    def default(self) -> Any:
        """The default a signature shows: the command line's, as Python holds it; None where the
        command decides (no default, set by the recipe, or the out= directory)."""
        if self.kind == "FLAG":
            return False
        if self.recipe or not self.default_text or self.kind in ("PATH", "NPY"):
            return None
        if self.kind in ("INTEGER", "NUMBER", "AXIS", "LIST"):
            try:
                return int(self.default_text) if self.kind == "INTEGER" or re.fullmatch(
                    r"-?\d+", self.default_text) else float(self.default_text)
            except ValueError:
                return self.default_text  # an axis of names ("relu")
        return self.default_text


@dataclass
class Command:
    name: str                  # sweep, phase-diagram
    function: str              # sweep, phase_diagram
    description: str
    options: Dict[str, Option]  # by Python keyword, in the command line's order

    def keyword_of(self, option: str) -> Optional[str]:
        for o in self.options.values():
            if o.option == option:
                return o.name
        return None

    def aliases(self) -> Dict[str, str]:
        return {a: t for a, t in ALIASES.items() if t in self.options and a not in self.options
                and (a != "n_instances" or self.options[t].kind == "AXIS")}

    def parameters(self, progress: bool, squeeze: bool = False) -> List[inspect.Parameter]:
        keyword = inspect.Parameter.KEYWORD_ONLY
        params = [inspect.Parameter(o.name, keyword, default=o.default,
                                    annotation=_optional(o.annotation, o.default))
                  for o in self.options.values() if o.name != "out"]
        params.append(inspect.Parameter("out", keyword, default=None,
                                        annotation="Optional[PathInput]"))
        params.append(inspect.Parameter("progress", keyword, default=progress, annotation="bool"))
        if squeeze:
            params.append(inspect.Parameter("squeeze", keyword, default=True, annotation="bool"))
        return params

    def signature(self, progress: bool, squeeze: bool, returns: str) -> inspect.Signature:
        return inspect.Signature(self.parameters(progress, squeeze), return_annotation=returns)

    def help_text(self, text: str) -> str:
        """A help line as Python reads it: each --option it names, as its keyword."""
        def keyword(match: "re.Match[str]") -> str:
            name = self.keyword_of(match.group(0))
            return f"`{name}`" if name else match.group(0)
        return re.sub(r"--[a-zA-Z][a-zA-Z0-9-]*", keyword, text)

    def docstring(self, progress: bool, squeeze: bool, returns: str, summary: str) -> str:
        lines = [summary, "", *textwrap.wrap(f"`superpose {self.name}`: " +
                                            self.help_text(self.description), 92),
                 "", "Parameters", "----------"]
        for o in self.options.values():
            if o.name == "out":
                continue
            lines.append(f"{o.name} : {o.annotation}, default {_default_text(o)}")
            lines += _wrapped(self.help_text(o.help))
        lines += ["out : PathInput, default None", *_wrapped(OUT_HELP),
                  f"progress : bool, default {progress}", *_wrapped(PROGRESS_HELP)]
        if squeeze:
            lines += ["squeeze : bool, default True", *_wrapped(SQUEEZE_HELP)]
        aliases = self.aliases()
        if aliases:
            lines += ["", *textwrap.wrap(
                "Aliases (the names ARENA's exercises and the TMS notebook use): " +
                ", ".join(f"{a} = {t}" + (f" ({ALIAS_NOTES[a]})" if a in ALIAS_NOTES else "")
                          for a, t in aliases.items()) + ".", 92)]
        lines += ["", "Returns", "-------", returns, "", *textwrap.wrap(
            "Raises TypeError for an unknown keyword or a value of the wrong type, ValueError "
            "with the command line's message (naming the keyword) for a value it refuses.", 92)]
        return "\n".join(lines)

    def bind(self, given: Dict[str, Any], squeeze: bool) -> Dict[str, Any]:
        """The keywords a call gave, checked against the table, aliases resolved: an unknown
        keyword is a TypeError that suggests the nearest name."""
        options: Dict[str, Any] = {}
        aliases = self.aliases()
        known = set(self.options) | {"out", "progress"} | ({"squeeze"} if squeeze else set())
        for key, value in given.items():
            if value is None:
                continue  # None is "not given", as every default of None says
            name = key
            if key in aliases:
                name = aliases[key]
                if key == "n_instances":
                    value = _instances(value)
            elif key not in known:
                choices = sorted(known | set(aliases))
                near = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
                hint = f"; did you mean '{near[0]}'?" if near else \
                    f" (help(superpose.{self.function}) lists them)"
                raise TypeError(f"{self.function}() got an unexpected keyword argument "
                                f"'{key}'{hint}")
            if name in options:
                raise TypeError(f"{self.function}() got '{name}' twice (as '{key}' and another "
                                "name for it)")
            options[name] = value
        return options


def _wrapped(text: str) -> List[str]:
    return textwrap.wrap(text, 92, initial_indent="    ", subsequent_indent="    ")


def _optional(annotation: str, default: Any) -> str:
    return f"Optional[{annotation}]" if default is None else annotation


def _instances(value: Any) -> range:
    try:
        count = operator.index(value) if not isinstance(value, (bool, np_bool_types())) else 0
    except TypeError:
        count = 0
    if count < 1:
        raise TypeError(f"n_instances= takes a whole number of models, at least 1, not {value!r}")
    return range(count)


def np_bool_types() -> tuple:
    numpy = sys.modules.get("numpy")  # never imported here: the build runs this without it
    return (numpy.bool_,) if numpy is not None else ()


def _default_text(o: Option) -> str:
    if o.recipe:
        return "the recipe's"
    if o.default is None:
        return "None (the command decides)"
    return repr(o.default)


def commands(table_json: str) -> Dict[str, Command]:
    """The table as Commands, by Python function name."""
    table = json.loads(table_json)
    result = {}
    for c in table["commands"]:
        options = {}
        for row in c["options"]:
            name = row["option"][2:].replace("-", "_")
            if row["kind"] not in ANNOTATIONS:
                raise ValueError(f"superpose {c['command']} {row['option']}: kind {row['kind']!r} "
                                 f"has no Python type (host/cli/options.hpp's kinds: "
                                 f"{', '.join(ANNOTATIONS)})")
            options[name] = Option(name=name, option=row["option"], kind=row["kind"],
                                   help=row["help"], default_text=row["default"],
                                   values=row["values"], recipe=row["recipe"])
        function = c["command"].replace("-", "_")
        result[function] = Command(name=c["command"], function=function,
                                   description=c["description"], options=options)
    return result


# The commands run through a function of their own options (merge takes a path): what each
# returns, whether it shows a progress bar by default, whether its result has sweeps (squeeze=).
FUNCTIONS: Dict[str, Tuple[str, bool, bool, str]] = {
    "train": ("Run", False, False, "Trains one model (`superpose train`)."),
    "sweep": ("Sweep", True, True,
              "Trains the Cartesian product of option axes (`superpose sweep`)."),
    "experiments": ("Experiments", True, False,
                    "The essay's six experiments over many seeds (`superpose experiments`)."),
    "phase_diagram": ("PhaseDiagram", True, True,
                      "Anthropic's 2 -> 1 phase diagram (`superpose phase-diagram`)."),
    "tms": ("Tms", True, True,
            "Toy Models of Superposition's main results, judged (`superpose tms`)."),
}


def stub_text(table_json: str) -> str:
    """The stub type checkers and editors read for superpose._commands: each function's keyword
    parameters with their types and defaults, from the same table."""
    cs = commands(table_json)
    out = ['"""Generated at build time from the engine\'s option table by '
           'superpose/_options.py: do not edit."""',
           "import os", "from typing import Any, Optional, Sequence, Tuple, Union", "",
           "import numpy as np", "",
           "from ._results import Configurations, Experiments, PhaseDiagram, Run, Sweep, Tms", "",
           TYPE_ALIASES]
    for function, (returns, progress, squeeze, summary) in FUNCTIONS.items():
        command = cs[function]
        params = []
        for p in command.parameters(progress, squeeze):
            params.append(f"    {p.name}: {p.annotation} = {p.default!r},")
        for alias, target in command.aliases().items():
            annotation = "Integer" if alias == "n_instances" else command.options[target].annotation
            params.append(f"    {alias}: Optional[{annotation}] = None,")
        out.append(f"def {function}(\n    *,\n" + "\n".join(params) + f"\n) -> {returns}:")
        out.append(f'    """{summary}"""')
        out.append("    ...")
        out.append("")
    out.append("def configurations(configurations: Any, *, progress: bool = True,\n"
               "                   out: Optional[PathInput] = None, squeeze: bool = True,\n"
               "                   **options: Any) -> Configurations: ...")
    out.append("def merge(path: PathInput) -> Sweep: ...")
    out.append("def load(path: PathInput, squeeze: bool = True) -> Any: ...")
    out.append("")
    return "\n".join(out)


def _load_core(path: str):
    """The built extension, loaded from its file without the package (whose imports need numpy)."""
    import importlib.machinery
    import importlib.util
    loader = importlib.machinery.ExtensionFileLoader("_core", path)
    spec = importlib.util.spec_from_file_location("_core", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


if __name__ == "__main__":  # python _options.py CORE STUB: writes the stub from the built engine
    core_path, stub_path = sys.argv[1], sys.argv[2]
    with open(stub_path, "w") as f:
        f.write(stub_text(_load_core(core_path).options_json()))
