"""The Python package as a researcher uses it (pytest; tests/test_python.sh installs it into a fresh
virtual environment from this checkout and runs this file): every function gives the command line's
values exactly, replays numpy arrays as the command line replays files, refuses bad input with the
command line's message as ValueError, and a sweep stopped by Ctrl-C resumes."""
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import superpose

BINARY = os.environ.get("SUPERPOSE_BINARY", str(Path(__file__).parents[2] / "build" / "superpose"))


def cli(*args, out):
    result = subprocess.run([BINARY, *map(str, args), "--backend", "cpu", "--out", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return Path(out)


def read_csv(path):
    """As the package reads results.csv: every number to the double printed (pandas 3's default)."""
    if int(pd.__version__.split(".")[0]) >= 3:
        return pd.read_csv(path)
    return read_csv(path)


def same_bytes(a: Path, b: Path):
    assert a.read_bytes() == b.read_bytes(), f"{a} and {b} differ"


def test_train_gives_the_command_lines_values(tmp_path):
    options = dict(model="relu", sparsity=0.8, importance=[1, 0.5], lr=3e-4, steps=300, seed=44)
    cli("train", "--model", "relu", "--sparsity", "0.8", "--importance", "1,0.5", "--lr", "3e-4",
        "--steps", "300", "--seed", "44", out=tmp_path / "cli")
    on_disk = superpose.train(backend="cpu", out=tmp_path / "api", **options)
    for name in ("results.csv", "train_loss.npy", "W.npy", "b.npy", "eval_loss.npy", "data.npy"):
        same_bytes(tmp_path / "cli" / name, tmp_path / "api" / name)
    in_memory = superpose.train(backend="cpu", **options)
    assert in_memory.path is None
    assert in_memory.W.dtype == np.float32 and in_memory.W.shape == (1, 2)
    np.testing.assert_array_equal(in_memory.W, on_disk.W)
    np.testing.assert_array_equal(in_memory.train_loss,
                                  np.load(tmp_path / "cli" / "train_loss.npy")[0])
    np.testing.assert_array_equal(in_memory.W_snapshots, np.load(tmp_path / "cli" / "W.npy")[0])
    assert in_memory.data.shape == (1000, 2)
    assert in_memory.results.equals(read_csv(tmp_path / "cli" / "results.csv"))
    loaded = superpose.load(tmp_path / "cli")
    np.testing.assert_array_equal(loaded.W, in_memory.W)


def test_sweep_gives_the_command_lines_values_with_axes_as_python_holds_them(tmp_path):
    cli("sweep", "--features", "5", "--hidden", "2", "--data-mode", "fresh", "--batch", "128",
        "--steps", "100", "--density", "logspace(-1,0,3)", "--importance-decay", "0.9",
        "--seed", "range(0,4)", "--model", "linear,relu", out=tmp_path / "cli")
    sweep = superpose.sweep(backend="cpu", features=5, hidden=2, data_mode="fresh", batch=128,
                            steps=100, density=np.logspace(-1, 0, 3), importance_decay=0.9,
                            seed=range(4), model=["linear", "relu"], out=tmp_path / "api")
    same_bytes(tmp_path / "cli" / "results.csv", tmp_path / "api" / "results.csv")
    assert sweep.shape == (2, 3, 4)  # the swept axes: model, density, seed
    assert sweep.settings == {"steps": 100, "lr": 1e-3, "weight_decay": 0.01,
                              "importance_decay": 0.9}
    assert sweep.W.shape == sweep.shape + (2, 5) and sweep.b.shape == sweep.shape + (5,)
    expected = read_csv(tmp_path / "cli" / "results.csv")
    # results.csv's columns exactly, and a column for each axis it lacks (density, decay).
    assert sweep.results[expected.columns].equals(expected)
    assert list(sweep.results.columns[:3]) == ["model_id", "density", "importance_decay"]
    np.testing.assert_array_equal(sweep.results["density"],
                                  np.tile(np.repeat(np.logspace(-1, 0, 3), 4), 2))
    assert (sweep.results["importance_decay"] == 0.9).all()
    assert sweep.axes["seed"].dtype == np.int64 and list(sweep.axes["seed"]) == [0, 1, 2, 3]
    # W's leading dimensions are the axes: model 1 (relu), density 2, seed 3.
    row = expected[expected.model_id == np.ravel_multi_index((1, 2, 3), sweep.shape)]
    assert row["model"].item() == "relu" and row["seed"].item() == 3
    np.testing.assert_array_equal(sweep.W[1, 2, 3].ravel(),
                                  row[[f"W_{j}_{f}" for j in range(2) for f in range(5)]]
                                  .to_numpy(np.float64).astype(np.float32).ravel())
    assert list(sweep.axes["model"]) == ["linear", "relu"]
    whole = superpose.load(tmp_path / "api", squeeze=False)
    assert whole.shape == (2, 1, 1, 1, 3, 1, 4) and whole.settings == {}
    np.testing.assert_array_equal(whole.W.reshape(sweep.W.shape), sweep.W)
    in_memory = superpose.sweep(backend="cpu", features=5, hidden=2, data_mode="fresh", batch=128,
                                steps=100, density="logspace(-1,0,3)", importance_decay=[0.9],
                                seed="range(0,4)", model="linear,relu")
    assert in_memory.results.equals(sweep.results)
    assert len(repr(in_memory)) < 200 and "24 models over model (2) x density (3) x seed (4)" \
        in repr(in_memory)
    ds = in_memory.to_xarray()
    assert ds["eval_loss"].dims == ("model", "density", "seed")
    assert float(ds["eval_loss"].sel(model="relu", seed=3).isel(density=2)) == \
        row["eval_loss"].item()
    # Per-feature statistics along a feature dimension, not norm_0 ... norm_4.
    assert ds["norm"].dims == ("model", "density", "seed", "feature")
    assert float(ds["norm"].sel(model="relu", seed=3).isel(density=2, feature=4)) == \
        row["norm_4"].item()
    assert "norm_0" not in ds and "W_0_0" not in ds


def test_best_keeps_the_lowest_loss_model_of_each_setting():
    sweep = superpose.sweep(backend="cpu", features=5, hidden=2, steps=60, density=[0.1, 1],
                            seed=range(5), trajectories=True, eval_every=20, progress=False)
    best = sweep.best(over="seed", by="eval_loss")
    assert best.shape == (2,) and best.W.shape == (2, 2, 5) and "seed" not in best.axes
    losses = sweep.results["eval_loss"].to_numpy().reshape(sweep.shape)
    for d in range(2):
        seed = int(np.argmin(losses[d]))
        assert best.results["seed"][d] == seed and best.results["eval_loss"][d] == losses[d].min()
        np.testing.assert_array_equal(best.W[d], sweep.W[d, seed])
        np.testing.assert_array_equal(best.trajectories["train_loss"][d],
                                      sweep.trajectories["train_loss"][d, seed])
    worst = sweep.best(over="seed", by="eval_loss", mode="max")
    assert (worst.results["eval_loss"].to_numpy() == losses.max(axis=1)).all()
    with pytest.raises(ValueError, match="'lr' is not an axis"):
        sweep.best(over="lr")
    # Over an axis that is not the last; a NaN never wins.
    by_density = sweep.best(over="density")
    assert by_density.shape == (5,)
    for seed in range(5):
        d = int(np.argmin(losses[:, seed]))
        np.testing.assert_array_equal(by_density.W[seed], sweep.W[d, seed])
    sweep.results.loc[int(np.argmin(losses[0])), "eval_loss"] = np.nan
    assert not np.isnan(sweep.best().results["eval_loss"]).any()
    ds = sweep.to_xarray()
    assert ds["train_loss_curve"].dims == ("density", "seed", "step")
    assert list(ds["eval_step"].values) == list(sweep.trajectory_steps["eval_loss"])
    assert ds["W_trajectory"].dims == ("density", "seed", "snapshot_step", "hidden", "feature")


def test_experiments_and_phase_diagram_give_the_command_lines_values(tmp_path):
    cli("experiments", "--seeds", "3", out=tmp_path / "cli_exp")
    exp = superpose.experiments(backend="cpu", seeds=3)
    assert exp.results.equals(read_csv(tmp_path / "cli_exp" / "results.csv"))
    assert exp.summary.equals(read_csv(tmp_path / "cli_exp" / "experiments.csv"))
    assert sorted(exp.examples) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_array_equal(exp.examples[5].train_loss,
                                  np.load(next((tmp_path / "cli_exp").glob("exp5-*"))
                                          / "train_loss.npy")[0])
    grid = ["--importance-cells", "3", "--density-cells", "2", "--seeds", "2", "--steps", "200",
            "--batch", "128", "--eval-points", "500"]
    cli("phase-diagram", *grid, out=tmp_path / "cli_pd")
    pd_api = superpose.phase_diagram(backend="cpu", importance_cells=3, density_cells=2, seeds=2,
                                     steps=200, batch=128, eval_points=500)
    same = read_csv(tmp_path / "cli_pd" / "phase_diagram.csv")
    assert pd_api.cells.equals(same)
    assert superpose.load(tmp_path / "cli_pd").cells.equals(same)


def test_numpy_arrays_replay_as_the_command_lines_files(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.random((1000, 2))
    W0 = rng.normal(size=(1, 2)).astype(np.float32)
    b0 = np.zeros(2)
    for name, array in (("x", data), ("W0", W0), ("b0", b0)):
        np.save(tmp_path / f"{name}.npy", array)
    cli("train", "--steps", "200", "--data", tmp_path / "x.npy", "--init-W", tmp_path / "W0.npy",
        "--init-b", tmp_path / "b0.npy", out=tmp_path / "cli")
    run = superpose.train(backend="cpu", steps=200, data=data, init_W=W0, init_b=b0)
    np.testing.assert_array_equal(run.W, superpose.load(tmp_path / "cli").W)
    np.testing.assert_array_equal(run.data, data.astype(np.float32))


def test_bad_input_raises_value_error_with_the_command_lines_message(tmp_path):
    # The command line's message, naming the keyword the caller typed.
    cases = [(dict(steps=0), "steps"), (dict(sparsity=1.5), "sparsity"),
             (dict(lr=float("nan")), "lr"), (dict(model="quadratic"), "model"),
             (dict(data=np.ones((10, 3))), "data")]
    for options, keyword in cases:
        with pytest.raises(ValueError, match=f"^{keyword}: "):
            superpose.train(backend="cpu", out=tmp_path / "bad", **options)
        assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="^density: the value is empty"):
        superpose.sweep(backend="cpu", density=[])
    with pytest.raises(TypeError):
        superpose.sweep(backend="cpu", seed=object())


def test_boolean_options_take_only_booleans(tmp_path):
    # overwrite="False" is a string, and a non-empty string is true: refused, never obeyed.
    superpose.train(backend="cpu", steps=5, out=tmp_path / "run")
    (tmp_path / "run" / "notes.txt").write_text("mine")
    for bad in ("False", "True", 0, 1, "no"):
        with pytest.raises(TypeError, match="overwrite= takes True or False"):
            superpose.train(backend="cpu", steps=6, overwrite=bad, out=tmp_path / "run")
        with pytest.raises(TypeError, match="trajectories= takes True or False"):
            superpose.sweep(backend="cpu", steps=5, trajectories=bad)
        with pytest.raises(TypeError, match="progress= takes True or False"):
            superpose.train(backend="cpu", steps=5, progress=bad)
    run = superpose.train(backend="cpu", steps=6, overwrite=np.bool_(True), out=tmp_path / "run")
    assert run.train_loss.shape == (6,) and (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_arrays_in_any_byte_order_replay_and_errors_name_the_keyword():
    rng = np.random.default_rng(1)
    data = rng.random((1000, 2)).astype(np.float32)
    little = superpose.train(backend="cpu", steps=50, data=data)
    big = superpose.train(backend="cpu", steps=50, data=data.astype(">f4"))
    np.testing.assert_array_equal(big.W, little.W)
    counts = superpose.train(backend="cpu", steps=50, data=(data > 0.5).astype(np.int64))
    np.testing.assert_array_equal(counts.data, (data > 0.5).astype(np.float32))
    with pytest.raises(ValueError, match="^data: ") as error:
        superpose.train(backend="cpu", data=np.ones((10, 3), dtype=">f8"))
    assert "shm" not in str(error.value) and "superpose-" not in str(error.value)
    with pytest.raises(TypeError, match="data= takes an array of real numbers"):
        superpose.train(backend="cpu", data=np.array([["a", "b"]]))


def _scratch_dirs(pid):
    parent = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    import tempfile
    return list(Path(parent or tempfile.gettempdir()).glob(f"superpose-{pid}-*"))


_LONG_SWEEP = ("import superpose, sys\n"
               "print('started', flush=True)\n"
               "superpose.sweep(backend='cpu', threads=1, features=20, hidden=5, "
               "data_mode='fresh', steps=100000, seed=range(50), chunk_models=1, progress=False)\n")


def _started(process):
    assert process.stdout.readline().strip() == "started"
    deadline = time.time() + 60
    while time.time() < deadline and not _scratch_dirs(process.pid):
        time.sleep(0.02)
    assert _scratch_dirs(process.pid), "the run's scratch directory never appeared"


def test_sigterm_removes_the_scratch_directory_and_a_killed_ones_is_reclaimed():
    import sys
    process = subprocess.Popen([sys.executable, "-c", _LONG_SWEEP], stdout=subprocess.PIPE,
                               text=True)
    _started(process)
    process.send_signal(signal.SIGTERM)  # what Slurm sends at a time limit
    assert process.wait(timeout=60) == -signal.SIGTERM  # it still ends as SIGTERM ends it
    assert not _scratch_dirs(process.pid)
    process = subprocess.Popen([sys.executable, "-c", _LONG_SWEEP], stdout=subprocess.PIPE,
                               text=True)
    _started(process)
    process.kill()  # SIGKILL: nothing runs, the scratch stays ...
    process.wait(timeout=60)
    assert _scratch_dirs(process.pid)
    superpose.train(backend="cpu", steps=5)  # ... until the next call finds its lock free
    assert not _scratch_dirs(process.pid)


def test_a_fifo_in_a_run_directory_is_an_error_not_a_hang(tmp_path):
    superpose.train(backend="cpu", steps=5, out=tmp_path / "run")
    (tmp_path / "run" / "manifest.json").unlink()
    os.mkfifo(tmp_path / "run" / "manifest.json")
    start = time.time()
    with pytest.raises(ValueError, match="not a regular file"):
        superpose.load(tmp_path / "run")
    assert time.time() - start < 10


def test_a_sweep_stopped_by_ctrl_c_resumes(tmp_path):
    options = dict(backend="cpu", threads=1, features=20, hidden=5, data_mode="fresh",
                   steps=400, seed=range(12), chunk_models=1, progress=False)
    whole = superpose.sweep(out=tmp_path / "whole", **options)
    out = tmp_path / "stopped"

    def interrupt_after_the_first_chunk():
        deadline = time.time() + 60
        while time.time() < deadline:
            if list((out / "chunks").glob("*/chunk.json")):
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=interrupt_after_the_first_chunk)
    watcher.start()
    start = time.time()
    with pytest.raises(KeyboardInterrupt):
        superpose.sweep(out=out, **options)
    watcher.join()
    assert time.time() - start < 30, "the stop was not prompt"
    assert not (out / "results.csv").exists()
    done = len(list((out / "chunks").glob("*/chunk.json")))
    assert 1 <= done < 12
    resumed = superpose.sweep(out=out, **options)
    assert f"{done} resumed from an earlier run" in resumed.log
    assert resumed.results.equals(whole.results)


def test_trajectories_across_a_steps_axis_and_shards_merged(tmp_path):
    sweep = superpose.sweep(backend="cpu", steps=[30, 60], seed=range(3), trajectories=True,
                            progress=False)
    loss = sweep.trajectories["train_loss"]
    assert loss.shape == sweep.shape + (60,)
    assert sweep.shape == (2, 3)  # steps, seed
    assert np.isnan(loss[0, :, 30:]).all() and not np.isnan(loss[1]).any()
    options = dict(backend="cpu", seed=range(8), steps=40, chunk_models=2, progress=False)
    whole = superpose.sweep(**options)
    for k in (1, 2):
        shard = superpose.sweep(shard=f"{k}/2", out=tmp_path / "shards", **options)
        assert isinstance(shard, superpose.ShardRun) and "shard" in shard.log
    merged = superpose.merge(tmp_path / "shards")
    assert merged.results.equals(whole.results)
    with pytest.raises(ValueError, match="^shard: "):
        superpose.sweep(shard="1/2", **options)


def test_tms_gives_the_command_lines_verdicts_and_sweeps(tmp_path):
    cli("tms", "--only", "intro,correlated", "--steps", "400", out=tmp_path / "cli")
    result = superpose.tms(backend="cpu", only="intro,correlated", steps=400, out=tmp_path / "api",
                           progress=False)
    assert list(result.verdicts["name"]) == ["intro", "correlated"]
    assert result.verdicts["shows"].dtype == bool
    for name in ("intro", "correlated"):
        same_bytes(tmp_path / "cli" / name / "results.csv", tmp_path / "api" / name / "results.csv")
        assert len(result.results[name].results) == {"intro": 50, "correlated": 25}[name]
    cli_report = superpose.load(tmp_path / "cli")
    assert cli_report.verdicts.equals(result.verdicts)
    assert cli_report.outcomes.equals(result.outcomes)
    # How often every seed shows what a verdict judges on the best seed: intro's two, correlated's
    # one, each over the cell's 5 seeds.
    assert list(result.outcomes["name"]) == ["intro", "intro", "correlated"]
    assert (result.outcomes["seeds"] == 5).all()
    assert ((result.outcomes["shown"] >= 0) & (result.outcomes["shown"] <= 5)).all()
    np.testing.assert_allclose(result.outcomes["fraction"],
                               result.outcomes["shown"] / result.outcomes["seeds"])
    # One result's directory alone is a sweep.
    assert superpose.load(tmp_path / "cli" / "intro").results.equals(result.results["intro"].results)
    with pytest.raises(ValueError, match="^only: unknown result 'pentagon'"):
        superpose.tms(backend="cpu", only="pentagon")


def test_to_xarray_without_xarray_says_what_to_install(monkeypatch):
    sweep = superpose.sweep(backend="cpu", steps=5, seed=range(2), progress=False)
    monkeypatch.setitem(__import__("sys").modules, "xarray", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install xarray \(or 'superpose\[notebook\]'\)"):
        sweep.to_xarray()


def _progress_while(args):
    """Every progress report of a command while it runs: [done, total, work_done, work_total]."""
    job = superpose._core.Job(args)
    seen = []
    while not job.wait(0.005):
        seen.append(job.progress())
    seen.append(job.progress())
    assert job.status() == 0, job.err()
    return seen


def test_progress_moves_within_a_chunk_and_tms_counts_every_result_once(tmp_path):
    # One chunk of two models, 50,000 steps each (a second here): the models finish together, the
    # steps do not.
    seen = _progress_while(["sweep", "--backend", "cpu", "--threads", "1", "--features", "20",
                            "--hidden", "5", "--steps", "50000", "--seed", "0,1",
                            "--out", str(tmp_path / "one")])
    assert seen[-1] == [2, 2, 100000, 100000]
    within = [p for p in seen if p[0] == 0 and 0 < p[2] < 100000]
    assert len({p[2] for p in within}) >= 3, "the steps did not move within the chunk"
    # tms: one total over every result it trains, never going back.
    seen = _progress_while(["tms", "--backend", "cpu", "--only", "intro,correlated", "--steps",
                            "300", "--out", str(tmp_path / "tms")])
    models = [p[0] for p in seen]
    assert seen[-1][0] == seen[-1][1] == 75 and seen[-1][2] == seen[-1][3] == 75 * 300
    assert models == sorted(models) and {p[1] for p in seen if p[1]} == {75}
    # Resumed, every chunk already done: the same totals, reached at once.
    assert _progress_while(["tms", "--backend", "cpu", "--only", "intro,correlated", "--steps",
                            "300", "--out", str(tmp_path / "tms")])[-1] == [75, 75, 22500, 22500]


def test_a_sparsity_axis_is_a_column_and_a_coordinate_beside_the_per_feature_sparsities():
    sweep = superpose.sweep(backend="cpu", features=3, steps=5, sparsity=[0, 0.5], progress=False)
    ds = sweep.to_xarray()
    assert list(ds["sparsity"].values) == [0, 0.5]
    assert ds["feature_sparsity"].dims == ("sparsity", "feature")
    # ... and with every axis kept, too.
    assert len(superpose.sweep(backend="cpu", features=3, steps=5, sparsity=[0, 0.5],
                               squeeze=False, progress=False).to_xarray()["sparsity"]) == 2
    # With a varied sparsity, results.csv's sparsity is the mean over features, not the axis.
    varied = superpose.sweep(backend="cpu", features=3, steps=5, sparsity=0.5,
                             varied_sparsity=[0.1, 0.9], progress=False)
    assert (varied.results["sparsity_axis"] == 0.5).all()
    assert list(varied.results["varied_sparsity"]) == [0.1, 0.9]
    assert not (varied.results["sparsity"] == 0.5).any()



def test_configurations_train_an_explicit_list_each_with_its_seeds(tmp_path):
    settings = [dict(density=0.1, lr=1e-3), dict(density=1.0, importance_decay=0.8),
                dict(density=0.3, lr=3e-3, n_hidden=2)]
    common = dict(backend="cpu", features=5, steps=40, data_mode="fresh", batch=64)
    listed = superpose.configurations(settings[:2] + [dict(density=0.3, lr=3e-3)], seed=range(3),
                                      hidden=2, progress=False, **common)
    assert len(listed.sweeps) == 3 and listed.W.shape == (3, 3, 2, 5)
    for k, row in enumerate(settings[:2] + [dict(density=0.3, lr=3e-3)]):
        alone = superpose.sweep(**common, **row, seed=range(3), hidden=2, progress=False)
        np.testing.assert_array_equal(listed.W[k], alone.W)
        part = listed.results[listed.results["configuration"] == k].reset_index(drop=True)
        # The same values (a column of whole numbers here and fractions in another configuration
        # is float64 in the concatenation: the values are exact either way).
        pd.testing.assert_frame_equal(part[alone.results.columns], alone.results,
                                      check_dtype=False, check_exact=True)
    assert list(listed.results["configuration"]) == [0] * 3 + [1] * 3 + [2] * 3
    assert "<superpose.Configurations: 3 configurations, 9 models" in repr(listed)
    # A DataFrame with a missing value (this configuration does not set it), saved under out=
    # and resumed.
    frame = pd.DataFrame([dict(density=0.1, importance_decay=0.9), dict(density=1.0)])
    first = superpose.configurations(frame, seed=range(2), out=tmp_path / "list", progress=False,
                                     **common)
    again = superpose.configurations(frame, seed=range(2), out=tmp_path / "list", progress=False,
                                     **common)
    assert "resumed" in again.log and again.results.equals(first.results)
    assert superpose.load(tmp_path / "list" / "config-000001").results.equals(
        first.sweeps[1].results)
    with pytest.raises(ValueError, match="holds the sweeps of superpose.configurations"):
        superpose.load(tmp_path / "list")
    # What is refused, and named.
    with pytest.raises(TypeError, match="configuration 2 sets hidden, which the keywords set"):
        superpose.configurations(settings, hidden=3, progress=False, **common)
    with pytest.raises(TypeError, match=r"^configuration 0: sweep\(\) got an unexpected keyword "
                                        r"argument 'densty'; did you mean 'density'\?"):
        superpose.configurations([dict(densty=0.1)], progress=False, **common)
    with pytest.raises(ValueError, match=r"^configuration 1: density: "):
        superpose.configurations([dict(density=0.1), dict(density=2.0)], progress=False, **common)
    with pytest.raises(TypeError, match="shard= is a sweep's"):
        superpose.configurations(settings, shard="1/2", out=tmp_path / "shards", **common)


def test_the_neuron_model_trains_from_python_as_on_the_command_line(tmp_path):
    # --model neuron (TMS's privileged basis: h = ReLU(W x)) beside the tied ReLU model, as an axis.
    cli("sweep", "--model", "relu,neuron", "--features", "10", "--hidden", "5", "--data-mode",
        "fresh", "--batch", "128", "--density", "0.1,0.75", "--importance-decay", "0.75",
        "--steps", "150", "--seed", "range(0,2)", out=tmp_path / "cli")
    run = superpose.sweep(backend="cpu", out=tmp_path / "api", model=["relu", "neuron"],
                          n_features=10, n_hidden=5, data_mode="fresh", batch_size=128,
                          feature_probability=[0.1, 0.75], importance_decay=0.75, steps=150,
                          seed=range(2), progress=False)
    same_bytes(tmp_path / "cli" / "results.csv", tmp_path / "api" / "results.csv")
    assert list(run.axes["model"]) == ["relu", "neuron"]
    assert set(run.results["model"]) == {"relu", "neuron"}
    assert run.W.shape == (2, 2, 2, 5, 10)
    # the two kinds differ: the hidden ReLU changes what is learned
    assert not np.array_equal(run.W[0], run.W[1])
    with pytest.raises(ValueError, match="accepted: linear, relu, neuron"):
        superpose.train(backend="cpu", model="neurons", steps=1)


def test_a_sweep_starts_from_your_weights_and_data(tmp_path):
    # init_W batched over the swept axes as the package shows them (density, seed), b shared by
    # every model, a dataset per seed; anything numpy takes (here an object with __array__, as a
    # torch tensor has) — the command line's bytes, and shards merged to the same rows.
    rng = np.random.default_rng(1)
    W = rng.normal(0, 0.5, (2, 3, 2, 5)).astype(np.float32)
    b = np.full(5, 0.05)
    data = rng.random((3, 1, 40, 5)) * (rng.random((3, 1, 40, 5)) > 0.6)  # seed, 1, points, n

    class Tensor:  # what torch.Tensor offers numpy
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return self.a

    np.save(tmp_path / "W.npy", W)
    np.save(tmp_path / "b.npy", b)
    np.save(tmp_path / "data.npy", data.transpose(1, 0, 2, 3))  # (1, seed, points, n)
    cli("sweep", "--features", "5", "--hidden", "2", "--steps", "30", "--density", "0.3,0.9",
        "--seed", "range(0,3)", "--init-W", tmp_path / "W.npy", "--init-b", tmp_path / "b.npy",
        "--data", tmp_path / "data.npy", out=tmp_path / "cli")
    options = dict(backend="cpu", n_features=5, n_hidden=2, steps=30, density=[0.3, 0.9],
                   seed=range(3), init_W=Tensor(W), init_b=b,
                   data=data.transpose(1, 0, 2, 3), progress=False)
    run = superpose.sweep(out=tmp_path / "api", **options)
    same_bytes(tmp_path / "cli" / "results.csv", tmp_path / "api" / "results.csv")
    assert run.W.shape == (2, 3, 2, 5)
    for k in (1, 2):
        superpose.sweep(shard=f"{k}/2", out=tmp_path / "shards", **options)
    merged = superpose.merge(tmp_path / "shards")
    assert merged.results.equals(run.results)
    # Each cell's seeds their own streams: results' seed is the key, the axis value seed_axis, and
    # to_xarray keeps both (the key as seed_key).
    own = superpose.sweep(backend="cpu", n_features=5, n_hidden=2, steps=5, density=[0.3, 0.9],
                          seed=range(3), cell_streams="independent", progress=False)
    assert list(own.results["seed_axis"]) == [0, 1, 2, 0, 1, 2]
    assert own.results["seed"].nunique() == 6
    ds = own.to_xarray()
    assert "seed_key" in ds and "seed_axis" not in ds and list(ds["seed"].values) == [0, 1, 2]
    np.testing.assert_array_equal(ds["seed_key"].values.ravel(), own.results["seed"].to_numpy())
    with pytest.raises(ValueError, match="do not broadcast against the sweep's shape"):
        superpose.sweep(backend="cpu", n_features=5, n_hidden=2, steps=1, seed=range(3),
                        init_W=np.zeros((4, 2, 5)))


def test_results_as_torch_tensors_and_an_arena_state_dict(tmp_path):
    # Zero-copy tensors of W and b, and the state dict ARENA's ToyModel/NeuronModel loads (W as
    # (instances, m, n), b_final as (instances, n), the models in model-id order). Needs torch,
    # which the test venv does not install (skipped there, with its reason).
    torch = pytest.importorskip("torch")
    run = superpose.sweep(backend="cpu", n_features=5, n_hidden=2, steps=20, model="neuron",
                          density=[0.3, 0.9], seed=range(3), progress=False)
    tensors = run.to_torch()
    assert tensors["W"].shape == (2, 3, 2, 5) and tensors["W"].dtype == torch.float32
    assert np.shares_memory(tensors["W"].numpy(), run.W)
    state = run.state_dict()
    assert state["W"].shape == (6, 2, 5) and state["b_final"].shape == (6, 5)
    ids = run.results["model_id"].to_numpy()
    flat_W = run.W.reshape(6, 2, 5)
    for k in range(6):  # instance k is model k, as results.csv's W_<j>_<f> columns give it
        row = run.results[run.results["model_id"] == ids[k]].iloc[0]
        np.testing.assert_array_equal(
            flat_W[k], np.array([[row[f"W_{j}_{f}"] for f in range(5)] for j in range(2)],
                                dtype=np.float32))
    model = torch.nn.Module()  # ARENA's parameter names and shapes
    model.W = torch.nn.Parameter(torch.empty(6, 2, 5))
    model.b_final = torch.nn.Parameter(torch.empty(6, 5))
    model.load_state_dict(state)
    assert torch.equal(model.W.detach(), torch.from_numpy(flat_W.copy()))
    one = superpose.train(backend="cpu", steps=5)
    assert one.state_dict()["W"].shape == (1, 1, 2) and one.to_torch()["b"].shape == (2,)
