#!/usr/bin/env python3
"""plots.py — the pictures researchers look at, drawn from superpose's run directories.

  plots.py run DIR     a `train` run (or an experiment's example run): the essay's figures —
                       data.png (the data scatter), mapping.png (x -> h -> y with W and b drawn),
                       dashboard.gif (the training dashboard animated over the snapshots) and
                       dashboard.html (the same with a slider, plotly). n > 2: W^T W and b instead.
  plots.py sweep DIR   a `sweep` with n > 2: wtw.png (W^T W heatmaps), norms.png (feature norms
                       coloured by interference), arrows.png (m = 2: each feature's column of W
                       as an arrow in the hidden plane) — the best seed of every cell, a row per
                       combination of the other swept axes (model, importance, ...) — and
                       dimensionality.png (Anthropic's dimensionality scatter against 1/(1-S),
                       one D* line per such combination).
  plots.py phase DIR   a `phase-diagram`: phase.png/.pdf, the trained phases with the closed-form
                       boundaries drawn over them, beside the closed-form winners.

Pictures go to DIR/plots/ (or --out), written by the engine's rules (scripts/run_files.py: never
through a link planted there, recorded as superpose's, so that --overwrite removes them and keeps
pictures of your own). Needs numpy, matplotlib, plotly, xxhash (scripts/python-deps).
"""
import argparse
import csv
import io
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import colors  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_files import RunFiles, RunFilesError, load_json, load_manifest, read_bytes  # noqa: E402

PHASES = ["ignored", "dedicated", "antipodal", "other", "diverged"]
PHASE_COLOURS = ["#4C72B0", "#DD8452", "#55A868", "#BBBBBB", "#000000"]


# ----------------------------------------------------------------------------- reading
def read_results(path):
    return list(csv.DictReader(io.StringIO(read_bytes(path).decode(), newline="")))


def model_W(row, n, m):
    return np.array([[float(row[f"W_{j}_{f}"]) for f in range(n)] for j in range(m)])


def model_b(row, n):
    return np.array([float(row[f"b_{f}"]) for f in range(n)])


def load_npy(directory, name):
    path = os.path.join(directory, name)
    return np.load(io.BytesIO(read_bytes(path))) if os.path.lexists(path) else None


def forward(W, b, x, relu, hidden_relu=False):
    h = x @ W.T
    if hidden_relu:  # the neuron model: h = ReLU(W x)
        h = np.maximum(h, 0)
    z = h @ W + b
    return np.maximum(z, 0) if relu else z


def display_data(row, n, count=1000, seed=0):
    """Samples of the model's data rule, drawn by numpy for display (fresh-mode runs keep none)."""
    rng = np.random.default_rng(seed)
    s = np.array([float(row[f"sparsity_{f}"]) for f in range(n)])
    return rng.uniform(0, 1, (count, n)) * (rng.uniform(0, 1, (count, n)) > s)


# ----------------------------------------------------------------------------- run
class Run:
    def __init__(self, directory):
        self.dir = directory
        self.manifest = load_json(os.path.join(directory, "manifest.json"))
        self.row = read_results(os.path.join(directory, "results.csv"))[0]
        self.n, self.m = int(self.row["n_features"]), int(self.row["n_hidden"])
        self.relu = self.row["model"] in ("relu", "neuron")
        self.hidden_relu = self.row["model"] == "neuron"
        self.W_snapshots = load_npy(directory, "W.npy")[0]  # snapshots x m x n
        self.b_snapshots = load_npy(directory, "b.npy")[0]
        self.snapshot_steps = load_npy(directory, "snapshot_steps.npy")
        self.train_loss = load_npy(directory, "train_loss.npy")[0]
        eval_loss = load_npy(directory, "eval_loss.npy")
        self.eval_loss = eval_loss[0] if eval_loss is not None else None
        self.eval_steps = load_npy(directory, "eval_steps.npy")
        data = load_npy(directory, "data.npy")
        self.data_is_display_sample = data is None
        self.data = data if data is not None else display_data(self.row, self.n)
        self.title = self.manifest.get("title") or (
            f"{self.row['model']} {self.n}->{self.m}, sparsity {float(self.row['sparsity']):.3g}, "
            f"importance {', '.join(self.row[f'importance_{f}'] for f in range(self.n))}")

    def frames(self, limit=60):
        count = len(self.snapshot_steps)
        return sorted(set(np.linspace(0, count - 1, min(limit, count)).round().astype(int).tolist()))


def draw_input(ax, run, W, data):
    h = data @ W.T
    sc = ax.scatter(data[:, 0], data[:, 1], c=h[:, 0], cmap="coolwarm", s=6, alpha=0.8)
    ax.annotate("", xy=(W[0, 0], W[0, 1]), xytext=(0, 0),
                arrowprops=dict(arrowstyle="->", color="black", lw=2))
    ax.text(W[0, 0], W[0, 1], f" W = [{W[0, 0]:.2f}, {W[0, 1]:.2f}]", fontsize=8)
    lim = max(1.1, float(np.abs(W).max()) * 1.15)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.axhline(0, color="#ccc", lw=0.5)
    ax.axvline(0, color="#ccc", lw=0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_title("input x (colour: h = W x)")
    return sc


def draw_hidden(ax, W, data, hidden_relu=False):
    h = (data @ W.T)[:, 0]
    if hidden_relu:  # the neuron model
        h = np.maximum(h, 0)
    ax.hist(h, bins=40, color="#888")
    ax.set_xlabel("h")
    ax.set_title("hidden h = ReLU(W x)" if hidden_relu else "hidden h = W x")


def draw_output(ax, run, W, b, data):
    y = forward(W, b, data, run.relu, run.hidden_relu)
    h = (data @ W.T)[:, 0]
    ax.scatter(y[:, 0], y[:, 1], s=6, alpha=0.6, color="#555", label="y for the data")
    hs = np.linspace(0 if run.hidden_relu else min(h.min(), -1.5), max(h.max(), 1.5), 400)
    curve = hs[:, None] * W[0][None, :] + b
    if run.relu:
        curve = np.maximum(curve, 0)
    ax.plot(curve[:, 0], curve[:, 1], color="#C44E52", lw=1.5, label="ReLU(Wᵀh + b)" if run.relu
            else "Wᵀh + b")
    ax.plot([b[0]], [b[1]], "o", color="#C44E52")
    ax.text(b[0], b[1], f" b = [{b[0]:.2f}, {b[1]:.2f}]", fontsize=8)
    lim = max(1.1, float(np.abs(y).max()) * 1.1)
    ax.set_xlim(-0.2 if run.relu else -lim, lim)
    ax.set_ylim(-0.2 if run.relu else -lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("y₁")
    ax.set_ylabel("y₂")
    ax.set_title("output y")
    ax.legend(fontsize=7, loc="upper right")


def draw_wtw(ax, W, title="WᵀW"):
    wtw = W.T @ W
    lim = max(1e-9, float(np.abs(wtw).max()))
    im = ax.imshow(wtw, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(title)
    ax.set_xlabel("feature")
    ax.set_ylabel("feature")
    return im


def draw_loss(ax, run, step=None):
    every = max(1, len(run.train_loss) // 1500)  # a thinned curve draws fast and looks the same
    ax.plot(np.arange(len(run.train_loss))[::every], run.train_loss[::every], lw=1, label="train")
    if run.eval_loss is not None and len(run.eval_loss):
        ax.plot(run.eval_steps, run.eval_loss, "o-", ms=2, lw=1, label="eval")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("loss")
    ax.legend(fontsize=7)
    if step is not None:
        return ax.axvline(step, color="black", lw=0.8)
    return None


def plot_run(directory, out):
    run = Run(directory)
    written = []
    W, b = run.W_snapshots[-1], run.b_snapshots[-1]
    if run.n == 2:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        train_rows = int(run.manifest.get("group", {}).get("train_rows", len(run.data)))
        ax.scatter(run.data[:train_rows, 0], run.data[:train_rows, 1], s=6, label="train")
        if len(run.data) > train_rows and not run.data_is_display_sample:
            ax.scatter(run.data[train_rows:, 0], run.data[train_rows:, 1], s=6, label="eval")
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
        ax.set_aspect("equal")
        ax.legend(fontsize=8)
        ax.set_title("data" + (" (a display sample)" if run.data_is_display_sample else ""))
        fig.tight_layout()
        written.append(save(fig, out, "data.png"))

    if run.n == 2 and run.m == 1:
        fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
        draw_input(axes[0], run, W, run.data)
        draw_hidden(axes[1], W, run.data, run.hidden_relu)
        draw_output(axes[2], run, W, b, run.data)
        fig.suptitle(f"{run.title} — final step {int(run.snapshot_steps[-1]) + 1}")
        fig.tight_layout()
    else:
        fig, axes = plt.subplots(1, 2, figsize=(9, 4))
        im = draw_wtw(axes[0], W)
        fig.colorbar(im, ax=axes[0])
        axes[1].bar(np.arange(run.n), b, color="#888")
        axes[1].set_title("b")
        axes[1].set_xlabel("feature")
        fig.suptitle(run.title)
        fig.tight_layout()
    written.append(save(fig, out, "mapping.png"))

    written.append(dashboard_gif(run, out))
    written.append(dashboard_html(run, out))
    return written


def save(fig, out, name):
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format=name.rsplit(".", 1)[1])
    plt.close(fig)
    return out.write_bytes(name, buffer.getvalue())


def dashboard_gif(run, out):
    """The training dashboard over the snapshots: the artists are drawn once and updated."""
    frames = run.frames(limit=40)
    two_to_one = run.n == 2 and run.m == 1
    fig, axes = plt.subplots(1, 3 if two_to_one else 2, figsize=(12 if two_to_one else 8, 3.9))
    marker = draw_loss(axes[0], run, 0)
    title = fig.suptitle("")
    if two_to_one:
        data = run.data
        ax = axes[1]
        dots = ax.scatter(data[:, 0], data[:, 1], c=np.zeros(len(data)), cmap="coolwarm", s=5,
                          vmin=-1, vmax=1)
        (arrow,) = ax.plot([0, 0], [0, 0], "k-", lw=2)
        lim = max(1.1, float(np.abs(run.W_snapshots).max()) * 1.1)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title("input x and W (colour: h)")
        ax = axes[2]
        outputs = ax.scatter(data[:, 0], data[:, 1], s=5, color="#555")
        (curve,) = ax.plot([], [], color="#C44E52", lw=1.5)
        ax.set_xlim(-0.2, 1.3)
        ax.set_ylim(-0.2, 1.3)
        ax.set_aspect("equal")
        ax.set_title("output y and ReLU(Wᵀh + b)" if run.relu else "output y and Wᵀh + b")
    else:
        image = draw_wtw(axes[1], run.W_snapshots[-1], "WᵀW")

    def draw(k):
        s = frames[k]
        step = int(run.snapshot_steps[s])
        W, b = run.W_snapshots[s], run.b_snapshots[s]
        marker.set_xdata([step, step])
        title.set_text(f"{run.title} — after step {step + 1}")
        if two_to_one:
            h = (data @ W.T)[:, 0]
            dots.set_array(h)
            arrow.set_data([0, W[0, 0]], [0, W[0, 1]])
            outputs.set_offsets(forward(W, b, data, run.relu, run.hidden_relu))
            hs = np.linspace(0 if run.hidden_relu else -1.5, 1.5, 200)
            c = hs[:, None] * W[0][None, :] + b
            if run.relu:
                c = np.maximum(c, 0)
            curve.set_data(c[:, 0], c[:, 1])
        else:
            image.set_data(W.T @ W)

    from PIL import Image

    fig.set_dpi(80)
    images = []
    for k in range(len(frames)):  # one render per frame, straight into Pillow
        draw(k)
        fig.canvas.draw()
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert(
            "P", palette=Image.Palette.ADAPTIVE))
    plt.close(fig)
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=160,
                   loop=0)
    return out.write_bytes("dashboard.gif", buffer.getvalue())


def dashboard_html(run, out):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    frames = run.frames(limit=80)
    two_to_one = run.n == 2 and run.m == 1
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "loss", "output y = ReLU(Wᵀ W x + b)" if two_to_one else "WᵀW"))
    fig.add_trace(go.Scatter(x=np.arange(len(run.train_loss)), y=run.train_loss, name="train loss",
                             line=dict(width=1)), row=1, col=1)
    if run.eval_loss is not None and len(run.eval_loss):
        fig.add_trace(go.Scatter(x=run.eval_steps, y=run.eval_loss, name="eval loss",
                                 mode="lines+markers", marker=dict(size=3)), row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=1)

    def frame_traces(s):
        W, b = run.W_snapshots[s], run.b_snapshots[s]
        if two_to_one:
            y = forward(W, b, run.data, run.relu, run.hidden_relu)
            return [go.Scatter(x=y[:, 0], y=y[:, 1], mode="markers", marker=dict(size=3),
                               name="y")]
        return [go.Heatmap(z=W.T @ W, colorscale="RdBu", zmid=0, name="WᵀW")]

    first = len(fig.data)
    for trace in frame_traces(frames[0]):
        fig.add_trace(trace, row=1, col=2)
    plotly_frames, steps = [], []
    for s in frames:
        step = int(run.snapshot_steps[s])
        plotly_frames.append(go.Frame(name=str(step), data=frame_traces(s),
                                      traces=list(range(first, first + 1))))
        steps.append(dict(method="animate", label=str(step + 1),
                          args=[[str(step)], dict(mode="immediate", frame=dict(duration=0))]))
    fig.frames = plotly_frames
    if two_to_one:
        fig.update_xaxes(range=[-0.2, 1.3], row=1, col=2)
        fig.update_yaxes(range=[-0.2, 1.3], row=1, col=2)
    fig.update_layout(
        title=run.title, height=480,
        sliders=[dict(active=0, currentvalue=dict(prefix="after step "), steps=steps)],
        updatemenus=[dict(type="buttons", showactive=False, x=0, y=-0.15, buttons=[
            dict(label="play", method="animate",
                 args=[None, dict(frame=dict(duration=80), fromcurrent=True)])])])
    from plotly.offline import get_plotlyjs
    # The page loads plotly.min.js from beside it (include_plotlyjs="directory"), written here.
    if not out.wrote("plotly.min.js"):
        out.write_text("plotly.min.js", get_plotlyjs())
    return out.write_text("dashboard.html",
                          fig.to_html(include_plotlyjs="directory", auto_play=False))


# ----------------------------------------------------------------------------- sweep
INTERFERENCE_LABEL = r"$\sum_{j\neq f}(\hat{W}_f\cdot W_j)^2\,/\,\|W_f\|^2$"


def axis_label(axis, k):
    labels = axis.get("labels")
    value = labels[k] if labels else f"{axis['values'][k]:.3g}"
    return f"{axis['name']} {value}"


def score(row):
    """The loss best-of-N ranks by: the evaluation loss, or the training loss where there is none."""
    value = float(row["eval_loss"])
    return value if np.isfinite(value) else float(row["train_loss"])


def sweep_cells(directory):
    """The best seed of every cell of a sweep — a cell is one value of every axis but the seed —
    as {cell multi-index (axes without the seed): row}, with the manifest's axes. Models that
    diverged are never chosen."""
    manifest = load_manifest(os.path.join(directory, "manifest.json"))
    axes, shape = manifest["axes"], manifest["shape"]
    for axis in axes:
        if axis["name"].startswith("varied_"):
            axis["feature"] = manifest["varied_feature"]
    seeds = shape[-1] if axes and axes[-1]["name"] == "seed" else 1
    cell_shape = shape[:-1] if seeds > 1 or (axes and axes[-1]["name"] == "seed") else shape
    best = {}
    for r in read_results(os.path.join(directory, "results.csv")):
        if r["status"] != "ok":
            continue
        cell = np.unravel_index(int(r["model_id"]) // seeds, cell_shape)
        cell = tuple(int(c) for c in cell)
        if cell not in best or score(r) < score(best[cell]):
            best[cell] = r
    return axes[:len(cell_shape)], best


SPARSITY_AXES = ("varied_sparsity", "varied_density", "sparsity", "density")


def x_axis_of(axes):
    """The sparsity axis the pictures run along: one feature's (--varied-*) when swept, else all
    features' (--sparsity/--density); None when there is none."""
    present = [k for k, a in enumerate(axes) if a["name"] in SPARSITY_AXES]
    swept = [k for k in present if len(axes[k]["values"]) > 1]
    ranked = sorted(swept or present, key=lambda k: SPARSITY_AXES.index(axes[k]["name"]))
    return ranked[0] if ranked else None


def density_of(row, axes, x_axis):
    """1 − S along the x axis: the varied feature's, or the mean over the features."""
    if x_axis is not None and "feature" in axes[x_axis]:
        return 1 - float(row[f"sparsity_{axes[x_axis]['feature']}"])
    return 1 - float(row["sparsity"])


def sweep_layout(axes, best, limit):
    """Rows: one per combination of the swept axes other than the x axis (a line each in the
    dimensionality plot); columns: the x axis' values (at most `limit`, evenly picked).
    Returns [(row label, [(column title, row of results.csv or None)])]."""
    x_axis = x_axis_of(axes)
    symbol = f"1−S_{axes[x_axis]['feature']}" if x_axis is not None and "feature" in axes[x_axis] \
        else "1−S"
    swept = [k for k, a in enumerate(axes) if len(a["values"]) > 1 and k != x_axis]
    columns = list(range(len(axes[x_axis]["values"]))) if x_axis is not None else [0]
    if len(columns) > limit:
        columns = [columns[i] for i in np.linspace(0, len(columns) - 1, limit).round().astype(int)]
    layout = []
    for group in np.ndindex(*[len(axes[k]["values"]) for k in swept]):
        label = ", ".join(axis_label(axes[k], v) for k, v in zip(swept, group))
        cells = []
        for c in columns:
            index = [0] * len(axes)
            for k, v in zip(swept, group):
                index[k] = v
            if x_axis is not None:
                index[x_axis] = c
            row = best.get(tuple(index))
            title = f"{symbol} = {density_of(row, axes, x_axis):.3g}" if row else "diverged"
            cells.append((title, row))
        layout.append((label, cells))
    return layout


def draw_arrows(ax, W, importance, title):
    """Each feature's column of W as an arrow in the hidden plane (ARENA's plot_features_in_2d),
    coloured by its importance."""
    cmap = plt.get_cmap("viridis")
    span = max(1e-6, float(np.abs(W).max())) * 1.15
    order = np.argsort(importance)  # the most important drawn last, on top
    for f in order:
        colour = cmap(float(importance[f] / max(importance.max(), 1e-12)))
        ax.plot([0, W[0, f]], [0, W[1, f]], color=colour, lw=1.2)
        ax.scatter([W[0, f]], [W[1, f]], color=colour, s=12, zorder=3)
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.axhline(0, color="#ddd", lw=0.6, zorder=0)
    ax.axvline(0, color="#ddd", lw=0.6, zorder=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def draw_neurons(ax, W, importance):
    """The neuron model's neurons (TMS's privileged basis; ARENA's neuron plot): for each neuron j
    a bar of its feature weights W_jf stacked, positive ones up and negative ones down, each
    feature its colour — one colour a neuron is monosemantic, many polysemantic."""
    cmap = plt.get_cmap("viridis_r")
    m, n = W.shape
    order = np.argsort(-importance, kind="stable")  # the most important at the bottom
    for j in range(m):
        up = down = 0.0
        for f in order:
            w = float(W[j, f])
            colour = cmap(f / max(1, n - 1))
            if w >= 0:
                ax.bar(j, w, bottom=up, color=colour, width=0.8, edgecolor="white", lw=0.3)
                up += w
            else:
                ax.bar(j, w, bottom=down, color=colour, width=0.8, edgecolor="white", lw=0.3)
                down += w
    ax.axhline(0, color="#888", lw=0.6)
    ax.set_xticks(range(m))
    ax.set_xlabel("neuron", fontsize=8)
    ax.tick_params(labelsize=7)


def grid(layout, width, height):
    rows, cols = len(layout), len(layout[0][1])
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + 1.2, height * rows + 0.6),
                             squeeze=False, constrained_layout=True)
    for i, (label, _) in enumerate(layout):
        if label:
            axes[i][0].annotate(label, (-0.25, 0.5), xycoords="axes fraction", rotation=90,
                                ha="right", va="center", fontsize=9)
    return fig, axes


def draw_cells(layout, axes, draw):
    """draw(ax, row, title) in every cell of a grid(layout) figure; a cell whose seeds all
    diverged is left empty, with its title."""
    for i, (_, cells) in enumerate(layout):
        for ax, (title, r) in zip(axes[i], cells):
            ax.set_title(title, fontsize=9)
            if r is None:
                ax.set_axis_off()
            else:
                draw(ax, r, title)


def plot_sweep(directory, out, limit=8):
    """W^T W heatmaps, norm bars and (m = 2) the features as arrows — the best seed of every cell,
    one row per combination of the other swept axes — and the dimensionality scatter with one
    D* line per such combination."""
    axes_meta, best = sweep_cells(directory)
    if not best:
        sys.exit(f"plots.py: {directory}/results.csv has no model that did not diverge")
    any_row = next(iter(best.values()))
    n, m = int(any_row["n_features"]), int(any_row["n_hidden"])
    layout = sweep_layout(axes_meta, best, limit)
    written = []

    def wtw(ax, r, title):
        draw_wtw(ax, model_W(r, n, m), title)
        ax.set_xticks([])
        ax.set_yticks([])

    fig, axes = grid(layout, 2.4, 2.5)
    draw_cells(layout, axes, wtw)
    fig.suptitle(f"WᵀW, {n} features -> {m} dimensions (best seed per cell)")
    written.append(save(fig, out, "wtw.png"))

    cmap = plt.get_cmap("viridis")

    def norm_bars(ax, r, title):
        norms = np.array([float(r[f"norm_{f}"]) for f in range(n)])
        interference = np.array([float(r[f"interference_{f}"]) for f in range(n)])
        superposition = np.clip(interference / np.maximum(norms**2, 1e-12), 0, 1)
        ax.barh(np.arange(n), norms, color=cmap(superposition))
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xlabel("‖W_f‖")

    fig, axes = grid(layout, 2.2, max(2.6, 0.16 * n + 1))
    draw_cells(layout, axes, norm_bars)
    for row in axes:
        row[0].set_ylabel("feature")
    fig.colorbar(plt.cm.ScalarMappable(norm=colors.Normalize(0, 1), cmap=cmap), ax=axes,
                 label=INTERFERENCE_LABEL)
    fig.suptitle("feature norms, coloured by interference (best seed per cell)")
    written.append(save(fig, out, "norms.png"))

    if m == 2:
        def arrows(ax, r, title):
            importance = np.array([float(r[f"importance_{f}"]) for f in range(n)])
            draw_arrows(ax, model_W(r, n, m), importance, title)

        fig, axes = grid(layout, 2.2, 2.3)
        draw_cells(layout, axes, arrows)
        fig.colorbar(plt.cm.ScalarMappable(norm=colors.Normalize(0, 1), cmap=cmap), ax=axes,
                     label="importance / max")
        fig.suptitle(f"features in the hidden plane, {n} -> 2 (best seed per cell)")
        written.append(save(fig, out, "arrows.png"))

    if any(r.get("model") == "neuron" for r in best.values()):
        importance = np.array([float(any_row[f"importance_{f}"]) for f in range(n)])

        def neurons(ax, r, title):
            draw_neurons(ax, model_W(r, n, m), importance)

        fig, axes = grid(layout, max(1.6, 0.38 * m + 0.8), 2.6)
        draw_cells(layout, axes, neurons)
        fig.colorbar(plt.cm.ScalarMappable(norm=colors.Normalize(0, n - 1),
                                           cmap=plt.get_cmap("viridis_r")),
                     ax=axes, label="feature (0: the most important)")
        fig.suptitle(f"each neuron's feature weights W_jf, stacked, {n} -> {m} (best seed per cell)")
        written.append(save(fig, out, "neurons.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    palette = plt.get_cmap("tab10")
    full = sweep_layout(axes_meta, best, limit=10**9)
    for g, (label, cells) in enumerate(full):
        chosen = [r for _, r in cells if r is not None]
        if not chosen:
            continue
        colour = palette(g % 10)
        x_axis = x_axis_of(axes_meta)
        x = np.array([1 / max(1e-12, density_of(r, axes_meta, x_axis)) for r in chosen])
        for f in range(n):
            d = np.array([float(r[f"dimensionality_{f}"]) for r in chosen])
            ax.scatter(x * np.exp(np.random.default_rng(f).normal(0, 0.03, len(x))), d, s=6,
                       alpha=0.45, color=colour)
        order = np.argsort(x)
        dpf = np.array([float(r["dimensions_per_feature"]) for r in chosen])
        ax.plot(x[order], dpf[order], "-", color=colour, lw=1.5,
                label=("D* = m / ‖W‖²_F" + (f", {label}" if label else "")))
    for frac in (1, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 1 / 3):
        ax.axhline(frac, color="#ddd", lw=0.7, zorder=0)
    ax.set_xscale("log")
    ax.set_ylim(-0.05, 1.1)
    ax.set_xlabel("1 / (1 − S)")
    ax.set_ylabel("dimensions (dots: each feature's D_f)")
    ax.set_title(f"dimensionality, {n} -> {m} (best seed per cell)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(save(fig, out, "dimensionality.png"))
    return written


# ----------------------------------------------------------------------------- phase diagram
def closed_form_winner(p, r):
    single = p / 3 - p * p / 4
    losses = np.stack([r * single, single + 0 * r, (1 + r) * p * p / 6])
    return np.argmin(losses, axis=0)  # 0 ignored, 1 dedicated, 2 antipodal


def plot_phase(directory, out):
    cells = read_results(os.path.join(directory, "phase_diagram.csv"))
    manifest = load_manifest(os.path.join(directory, "manifest.json"))
    densities = sorted({float(c["density"]) for c in cells})
    importances = sorted({float(c["relative_importance"]) for c in cells})
    index = {name: k for k, name in enumerate(PHASES)}
    grid = np.full((len(densities), len(importances)), index["diverged"])
    theory = np.zeros_like(grid)
    for c in cells:
        d, i = densities.index(float(c["density"])), importances.index(float(c["relative_importance"]))
        grid[d, i] = index.get(c["phase"], index["other"])
        theory[d, i] = index[c["closed_form_winner"]]

    def edges(values):
        logs = np.log10(values)
        step = (logs[-1] - logs[0]) / max(1, len(logs) - 1) if len(logs) > 1 else 1.0
        return 10 ** np.concatenate([[logs[0] - step / 2], logs + step / 2])

    cmap = colors.ListedColormap(PHASE_COLOURS)
    norm = colors.BoundaryNorm(np.arange(-0.5, len(PHASES)), cmap.N)
    fine_r = np.logspace(np.log10(importances[0]) - 0.2, np.log10(importances[-1]) + 0.2, 400)
    fine_p = np.logspace(np.log10(densities[0]) - 0.2, min(0, np.log10(densities[-1]) + 0.2), 400)
    R, P = np.meshgrid(fine_r, fine_p)
    winner = closed_form_winner(P, R)
    agreement = manifest.get("phase_diagram", {}).get("agreement", {})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
    for ax, data, title in ((axes[0], grid, "trained (best seed per cell)"),
                            (axes[1], theory, "closed-form winner")):
        ax.pcolormesh(edges(importances), edges(densities), data, cmap=cmap, norm=norm)
        ax.contour(R, P, winner, levels=[0.5, 1.5], colors="black", linewidths=1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(edges(importances)[0], edges(importances)[-1])
        ax.set_ylim(edges(densities)[0], edges(densities)[-1])
        ax.set_xlabel("relative importance of feature 2")
        ax.set_title(title)
    axes[0].set_ylabel("feature density 1 − S")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in PHASE_COLOURS]
    fig.legend(handles, ["feature 2 ignored", "feature 2 dedicated", "antipodal superposition",
                         "other", "diverged"], loc="lower center", ncol=5, fontsize=8)
    subtitle = ""
    if agreement:
        subtitle = (f": agrees with the closed form in {agreement['agree']}/{agreement['cells']} "
                    f"cells, {agreement['far_agree']}/{agreement['far_cells']} far from a boundary")
    pd = manifest.get("phase_diagram", {})
    fig.suptitle(f"2 -> 1 phase diagram, {pd.get('seeds', '?')} seeds per cell, "
                 f"{manifest.get('backend', '?')}{subtitle}\n"
                 "black lines: closed-form boundaries", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    written = [save_both(fig, out, "phase")]
    return written


def save_both(fig, out, stem):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="pdf")
    out.write_bytes(stem + ".pdf", buffer.getvalue())
    return save(fig, out, stem + ".png")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=["run", "sweep", "phase"])
    parser.add_argument("dir", help="a superpose run directory")
    parser.add_argument("--out", help="where the pictures go (default DIR/plots)")
    args = parser.parse_args(argv)
    if not os.path.exists(os.path.join(args.dir, "manifest.json")):
        parser.error(f"{args.dir}: not a superpose run directory (no manifest.json)")
    try:
        # DIR/plots is the run directory's own (reached by descriptor, never through a link);
        # --out is the directory as you name it.
        out = RunFiles.at(args.out) if args.out else RunFiles.at(args.dir).subdir("plots")
        written = {"run": plot_run, "sweep": plot_sweep, "phase": plot_phase}[args.kind](args.dir,
                                                                                         out)
    except RunFilesError as error:
        sys.exit(f"plots.py: {error}")
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
