"""Every option can be seen from Python (issue #30 §1): each function's signature has a keyword
parameter for every option its command's --help lists, with the same default; an unknown keyword
is a TypeError that suggests the nearest name; the aliases researchers type mean what they say;
the engine's messages name keywords, not options; the stub installed beside the package gives a
type checker the same parameters (mypy run on calls right and wrong); the command line is
installed with the package."""
import ast
import inspect
import os
import re
import subprocess
import warnings
import sys
from pathlib import Path

import numpy as np
import pytest

import superpose

BINARY = os.environ.get("SUPERPOSE_BINARY", str(Path(__file__).parents[2] / "build" / "superpose"))
FUNCTIONS = {"train": superpose.train, "sweep": superpose.sweep,
             "experiments": superpose.experiments, "phase-diagram": superpose.phase_diagram,
             "tms": superpose.tms}
# A line of CLI11's help: "  --density TEXT:AXIS   help", "  --lr TEXT:AXIS=1e-3   help",
# "  --overwrite   help" (a flag: no type).
HELP_LINE = re.compile(r"^  --([A-Za-z][\w-]*)(?: ([A-Z]+(?::[A-Z]+)?)(?:=(\S*))?)?(?: |$)")


def help_options(command):
    """The options `superpose COMMAND --help` lists: name -> (type, default text)."""
    text = subprocess.run([BINARY, command, "--help"], capture_output=True, text=True,
                          check=True).stdout
    options = {}
    for line in text.splitlines():
        match = HELP_LINE.match(line)
        if match and match.group(1) != "help":
            options[match.group(1)] = (match.group(2), match.group(3))
    return options


@pytest.mark.parametrize("command", list(FUNCTIONS))
def test_every_option_of_the_help_is_a_keyword_with_its_default(command):
    options = help_options(command)
    assert len(options) >= 6, options
    parameters = inspect.signature(FUNCTIONS[command]).parameters
    keywords = {name.replace("-", "_") for name in options}
    python_only = {"out", "progress"} | ({"squeeze"} if command in ("sweep", "phase-diagram",
                                                                     "tms") else set())
    assert set(parameters) == keywords | python_only, \
        f"{command}: a command-line option without a keyword, or a keyword without an option"
    recipe = {"steps", "data-mode", "points", "batch", "eval-points"} if "recipe" in options \
        else set()
    for name, (kind, default) in options.items():
        parameter = parameters[name.replace("-", "_")]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
        if kind is None:  # a flag
            assert parameter.default is False and parameter.annotation == "bool", name
        elif default is None or name == "out" or name in recipe:
            assert parameter.default is None, name  # the command's, the recipe's, or scratch
        elif isinstance(parameter.default, (int, float)):
            assert parameter.default == float(default), name
        else:
            assert parameter.default == default, name
    assert FUNCTIONS[command].__doc__.count("\n    ") >= len(options)


def test_types_are_those_of_the_option_table():
    sweep = inspect.signature(superpose.sweep).parameters
    assert sweep["density"].annotation == "Optional[Axis]"
    assert sweep["importance"].annotation == "Optional[Numbers]"
    assert sweep["features"].annotation == "Integer" and sweep["features"].default == 2
    assert sweep["lr"].default == 1e-3 and sweep["model"].default == "relu"
    train = inspect.signature(superpose.train).parameters
    assert train["init_W"].annotation == "Optional[ArrayInput]"
    assert train["eval_fraction"].annotation == "Number" and train["eval_fraction"].default == 0.2
    assert train["snapshot_every"].default == 10  # train's own default, not the group's 0
    assert inspect.signature(superpose.phase_diagram).parameters["importance_range"].annotation \
        == "Optional[Pair]"
    # Every option of the table has a kind with a Python type, and a default of that type.
    from superpose import _options
    for command in _options.commands(superpose._core.options_json()).values():
        for option in command.options.values():
            assert option.kind in _options.ANNOTATIONS, (command.name, option.option, option.kind)
            expected = {"INTEGER": int, "NUMBER": (int, float), "FLAG": bool}.get(option.kind)
            if expected and option.default is not None:
                assert isinstance(option.default, expected), (command.name, option.option)
    assert "`varied_feature`" in superpose.sweep.__doc__  # the help's --varied-feature, as typed
    assert not re.search(r"--[a-z]", superpose.sweep.__doc__)


def test_an_unknown_keyword_is_a_type_error_with_the_nearest_name():
    with pytest.raises(TypeError, match=r"^sweep\(\) got an unexpected keyword argument 'densty'; "
                                        r"did you mean 'density'\?"):
        superpose.sweep(densty=0.1)
    with pytest.raises(TypeError, match="did you mean 'n_features'"):
        superpose.train(n_featurs=3)
    with pytest.raises(TypeError, match=r"help\(superpose\.tms\) lists them"):
        superpose.tms(zzzz=1)
    with pytest.raises(TypeError, match="'features' twice"):
        superpose.sweep(features=3, n_features=3)


def test_aliases_mean_the_options_they_stand_for():
    arena = superpose.sweep(backend="cpu", n_features=5, d_hidden=2, feature_probability=[0.1, 1],
                            n_instances=2, batch_size=64, steps=30, data_mode="fresh",
                            progress=False)
    ours = superpose.sweep(backend="cpu", features=5, hidden=2, density=[0.1, 1], seed=range(2),
                           batch=64, steps=30, data_mode="fresh", progress=False)
    assert arena.results.equals(ours.results) and arena.shape == ours.shape
    np.testing.assert_array_equal(arena.W, ours.W)
    assert "n_instances" not in inspect.getdoc(superpose.train)  # train's seed is one number
    with pytest.raises(TypeError, match="n_instances= takes a whole number"):
        superpose.sweep(n_instances=0)
    # numpy integers are whole numbers; None is "not given", beside its alias too.
    again = superpose.sweep(backend="cpu", n_features=np.int64(5), d_hidden=2, density=None,
                            feature_probability=[0.1, 1], n_instances=np.int64(2), batch_size=64,
                            steps=30, data_mode="fresh", progress=False)
    assert again.results.equals(ours.results)


def test_the_engines_messages_name_keywords_and_leave_paths_alone():
    from superpose import _commands, _engine
    message = _engine._engine_message("cannot write '/data/--lr/x' (--out, --lr): --nope",
                                      Path("/scratch"), _commands.COMMANDS["sweep"])
    assert message == "cannot write '/data/--lr/x' (out, lr): --nope"
    with pytest.raises(TypeError, match=r"^density=\[True\]: expected a number"):
        superpose.sweep(backend="cpu", density=[True])
    with pytest.raises(TypeError, match=r"^density=\[\[0.1, 0.2\]\]: expected a number"):
        superpose.sweep(backend="cpu", density=[[0.1, 0.2]])
    with pytest.raises(ValueError, match=r"^data_mode: unknown data mode 'bogus'"):
        superpose.sweep(backend="cpu", data_mode="bogus", progress=False)
    with pytest.raises(ValueError) as error:
        superpose.sweep(backend="cpu", devices="0", progress=False)
    assert str(error.value).startswith("devices: ") and "--" not in str(error.value)


def test_load_of_a_missing_directory_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        superpose.load(tmp_path / "nonexistent")


class FakeTensor:
    """What matters of a torch tensor that requires grad: numpy refuses it until detached."""

    def __init__(self, array):
        self.array, self.detached = array, False

    def detach(self):
        copy = FakeTensor(self.array)
        copy.detached = True
        return copy

    def cpu(self):
        return self

    def __array__(self, dtype=None, copy=None):
        if not self.detached:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad")
        return self.array if dtype is None else self.array.astype(dtype)


def test_tensors_are_taken_as_their_values():
    W0 = np.array([[0.3, -0.2]], dtype=np.float32)
    a = superpose.train(backend="cpu", steps=20, init_W=FakeTensor(W0),
                        importance=FakeTensor(np.array([1.0, 0.5])))
    b = superpose.train(backend="cpu", steps=20, init_W=W0, importance=[1.0, 0.5])
    np.testing.assert_array_equal(a.W, b.W)


def test_a_torch_parameter_is_taken_as_its_values():
    W0 = np.array([[0.3, -0.2]], dtype=np.float32)
    b = superpose.train(backend="cpu", steps=20, init_W=W0, importance=[1.0, 0.5])
    torch = pytest.importorskip("torch", reason="torch is not installed here (pip install torch)")
    parameter = torch.nn.Parameter(torch.from_numpy(W0.copy()))
    c = superpose.train(backend="cpu", steps=20, init_W=parameter, importance=[1.0, 0.5])
    np.testing.assert_array_equal(c.W, b.W)


def package_file(name):
    return Path(superpose.__file__).parent / name


def test_the_stub_has_the_signatures_and_a_type_checker_reads_it(tmp_path):
    assert package_file("py.typed").exists()
    stub = ast.parse(package_file("_commands.pyi").read_text())
    functions = {f.name: f for f in stub.body if isinstance(f, ast.FunctionDef)}
    for command, function in FUNCTIONS.items():
        stubbed = [a.arg for a in functions[function.__name__].args.kwonlyargs]
        assert stubbed[:len(inspect.signature(function).parameters)] == \
            list(inspect.signature(function).parameters), command
    mypy = pytest.importorskip("mypy.api", reason="mypy is not installed here")
    case = tmp_path / "case.py"
    case.write_text(
        "import numpy as np\nimport superpose\n"
        "a = superpose.sweep(features=np.int64(5), density=np.logspace(-2, 0, 3),\n"
        "                    model=['linear', 'relu'], n_instances=3)\n"
        "b = superpose.train(steps=10, lr=np.float32(1e-3), init_W=np.zeros((1, 2)), out='x')\n"
        "c = superpose.sweep(densty=0.1)\n"
        "d = superpose.train(steps='many')\n"
        "e = superpose.phase_diagram(importance_range=[0.1, 10], seeds=2)\n")
    out, _, status = mypy.run(["--ignore-missing-imports", "--no-incremental", str(case)])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1 and len(errors) == 2, out
    assert 'case.py:6: error: Unexpected keyword argument "densty"' in errors[0], out
    assert "case.py:7: error:" in errors[1] and '"steps"' in errors[1], out


def test_the_command_line_is_installed_with_the_package():
    command = Path(sys.executable).parent / "superpose"
    result = subprocess.run([str(command), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"superpose {superpose.__version__}"


def test_training_on_the_cpu_beside_an_unusable_gpu_is_a_warning():
    from superpose import _engine
    line = ("superpose: not using the CUDA device: this build's kernels are for CUDA architecture "
            "90 and cannot run on the NVIDIA A100 (sm_80)")
    with pytest.warns(RuntimeWarning, match=r"trained on the CPU, not on this machine's GPU: "
                                            r"this build's kernels are for CUDA architecture 90"):
        _engine._warn_if_not_on_the_gpu("superpose: --backend auto chose cpu (x)\n" + line + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _engine._warn_if_not_on_the_gpu("superpose: --backend auto chose cpu (no GPU)\n")
