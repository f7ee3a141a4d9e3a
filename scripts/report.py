#!/usr/bin/env python3
"""report.py OUT — writes OUT/index.html, one page that shows and links what scripts/run made:
the essay's six experiments (table, figures, animated dashboards, interactive dashboards), the 2->1
phase diagram, Toy Models of Superposition's main results (superpose tms) and a geometry sweep. Only relative links to files under OUT; no network."""
import csv
import html
import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_files import RunFiles, RunFilesError, load_manifest, read_bytes  # noqa: E402

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1300px; margin: 2em auto; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
td.text, th.text { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.3em 0; }
.meta { color: #666; font-size: 0.85em; }
section { margin-bottom: 2.5em; }
.row { display: flex; gap: 1em; align-items: flex-start; flex-wrap: wrap; }
.row img { max-width: 48%; }
"""


def load_json(path):
    return load_manifest(path)  # every axis's values listed, where a manifest has axes


def read_csv(path):
    return list(csv.DictReader(io.StringIO(read_bytes(path).decode(), newline="")))


def rel(out, path):
    return html.escape(os.path.relpath(path, out))


def image(out, path, alt):
    if not os.path.exists(path):
        return f'<p class="meta">missing: {html.escape(os.path.relpath(path, out))}</p>'
    return f'<img src="{rel(out, path)}" alt="{html.escape(alt)}" loading="lazy">'


def meta(manifest):
    timings = manifest.get("timings_s", {})
    total = timings.get("sweep_total_s", timings.get("total", timings.get("train")))
    when = f", {total:.1f} s" if isinstance(total, (int, float)) else ""
    return (f'<p class="meta">superpose {html.escape(str(manifest.get("version", "?")))}, backend '
            f'{html.escape(str(manifest.get("backend", "?")))} '
            f'({html.escape(str(manifest.get("device", "?")))}){when}</p>')


def experiments_section(out):
    root = os.path.join(out, "experiments")
    if not os.path.exists(os.path.join(root, "experiments.csv")):
        return ""
    manifest = load_json(os.path.join(root, "manifest.json"))
    rows = read_csv(os.path.join(root, "experiments.csv"))
    parts = ["<section><h2>The essay's six experiments</h2>", meta(manifest),
             f"<p>Each experiment over {manifest.get('seeds')} seeds; <em>outcome</em> is the "
             "share of seeds that show what the essay describes. Files: "
             f'<a href="{rel(out, os.path.join(root, "results.csv"))}">results.csv</a> (every '
             f'model), <a href="{rel(out, os.path.join(root, "experiments.csv"))}">'
             "experiments.csv</a>.</p>",
             "<table><tr><th>#</th><th class=text>experiment</th><th>model</th><th>sparsity</th>"
             "<th>importance</th><th>models</th><th>diverged</th><th>train loss median</th>"
             "<th>eval loss median</th><th>outcome</th><th class=text>outcome tested</th></tr>"]
    for r in rows:
        parts.append(
            f"<tr><td>{r['experiment']}</td><td class=text>{html.escape(r['title'])}</td>"
            f"<td>{r['model']}</td><td>{r['sparsity']}</td>"
            f"<td>{r['importance_0']}, {r['importance_1']}</td><td>{r['models']}</td>"
            f"<td>{r['diverged']}</td><td>{float(r['train_loss_median']):.4f}</td>"
            f"<td>{float(r['eval_loss_median']):.4f}</td>"
            f"<td>{100 * float(r['outcome_fraction']):.0f}%</td>"
            f"<td class=text>{html.escape(r['outcome'])}</td></tr>")
    parts.append("</table>")
    for entry in manifest.get("experiments", []):
        slug = next((d for d in sorted(os.listdir(root))
                     if d.startswith(f"exp{entry['number']}-")), None)
        if slug is None:
            continue
        plots = os.path.join(root, slug, "plots")
        parts.append(f"<h3>{entry['number']}. {html.escape(entry['title'])} "
                     f"<span class=meta>(seed {manifest.get('example_seed')})</span></h3>")
        parts.append(image(out, os.path.join(plots, "mapping.png"), "x -> h -> y"))
        parts.append('<div class="row">' + image(out, os.path.join(plots, "data.png"), "data")
                     + image(out, os.path.join(plots, "dashboard.gif"), "training dashboard")
                     + "</div>")
        if os.path.exists(os.path.join(plots, "dashboard.html")):
            parts.append(f'<p><a href="{rel(out, os.path.join(plots, "dashboard.html"))}">'
                         "interactive dashboard (slider over the training steps)</a></p>")
    parts.append("</section>")
    return "\n".join(parts)


def phase_section(out):
    root = os.path.join(out, "phase-diagram")
    if not os.path.exists(os.path.join(root, "phase_diagram.csv")):
        return ""
    manifest = load_json(os.path.join(root, "manifest.json"))
    pd = manifest.get("phase_diagram", {})
    a = pd.get("agreement", {})
    group = manifest.get("group", {})
    steps = manifest["axes"][1]["values"][0] if len(manifest.get("axes", [])) > 1 else "?"
    text = (f"{pd.get('density_cells')} × {pd.get('importance_cells')} cells × {pd.get('seeds')} "
            f"seeds = {manifest.get('models')} ReLU models, {int(steps)} steps of "
            f"{group.get('batch')} fresh samples. Each cell shows the phase of its seed with the "
            f"lowest eval loss. The best seed's phase agrees with the closed-form winner in "
            f"{a.get('agree')} of {a.get('cells')} cells, and in {a.get('far_agree')} of "
            f"{a.get('far_cells')} cells far from a boundary (runner-up ≥ 2.5× the winner's "
            f"loss).")
    return "\n".join([
        "<section><h2>The 2 → 1 phase diagram</h2>", meta(manifest), f"<p>{html.escape(text)}</p>",
        image(out, os.path.join(root, "plots", "phase.png"), "phase diagram"),
        f'<p>Files: <a href="{rel(out, os.path.join(root, "phase_diagram.csv"))}">'
        f'phase_diagram.csv</a>, <a href="{rel(out, os.path.join(root, "results.csv"))}">'
        f'results.csv</a>, <a href="{rel(out, os.path.join(root, "plots", "phase.pdf"))}">'
        "phase.pdf</a>.</p></section>"])


def geometry_section(out):
    root = os.path.join(out, "geometry")
    if not os.path.exists(os.path.join(root, "results.csv")):
        return ""
    manifest = load_json(os.path.join(root, "manifest.json"))
    group = manifest.get("group", {})
    return "\n".join([
        f"<section><h2>Geometry: {group.get('n_features')} features in "
        f"{group.get('n_hidden')} dimensions</h2>", meta(manifest),
        "<p>Anthropic's setting: importance 0.9<sup>f</sup>, feature density swept on a log "
        "scale; the pictures show the best seed of every cell (on the shared evaluation set).</p>",
        image(out, os.path.join(root, "plots", "wtw.png"), "W^T W"),
        image(out, os.path.join(root, "plots", "norms.png"), "feature norms"),
        (image(out, os.path.join(root, "plots", "arrows.png"), "features in the hidden plane")
         if os.path.exists(os.path.join(root, "plots", "arrows.png")) else ""),
        image(out, os.path.join(root, "plots", "dimensionality.png"), "dimensionality"),
        f'<p>Files: <a href="{rel(out, os.path.join(root, "results.csv"))}">results.csv</a></p>'
        "</section>"])


# The pictures each `superpose tms` result is judged by (plots.py sweep draws them).
TMS_PICTURES = {"intro": ["arrows.png"], "tms-20-5": ["wtw.png", "norms.png"],
                "geometry": ["dimensionality.png"], "correlated": ["arrows.png"],
                "anticorrelated": ["arrows.png"], "collapse": ["arrows.png"]}


def tms_section(out):
    root = os.path.join(out, "tms")
    if not os.path.exists(os.path.join(root, "tms.json")):
        return ""
    report = load_json(os.path.join(root, "tms.json"))
    shown = sum(e["shows"] for e in report["experiments"])
    parts = ["<section><h2>Toy Models of Superposition: the main results</h2>",
             f'<p class="meta">superpose {html.escape(report["version"])}, '
             f'{html.escape(report["device"])}, {html.escape(report["scale"])} scale</p>',
             f"<p>{shown} of {len(report['experiments'])} results show what the paper reports, "
             "judged from each trained W (the best seed of every cell on the evaluation set every "
             "model shares; recipe tms: fresh batches of 1024, lr 1e-3).</p>"]
    for e in report["experiments"]:
        key = next((k for k in TMS_PICTURES if e["name"].startswith(k)), None)
        directory = os.path.join(root, e["dir"])
        verdict = "shows what the paper reports" if e["shows"] else "does NOT show what the paper reports"
        parts.append(f"<h3>{html.escape(e['title'])}</h3><p><b>{verdict}</b></p><ul>"
                     + "".join(f"<li>{html.escape(line)}</li>" for line in e["lines"]) + "</ul>")
        parts.append('<div class="row">' + "".join(
            image(out, os.path.join(directory, "plots", name), name)
            for name in TMS_PICTURES.get(key, [])) + "</div>")
        parts.append(f'<p>Files: <a href="{rel(out, os.path.join(directory, "results.csv"))}">'
                     "results.csv</a></p>")
    parts.append("</section>")
    return "\n".join(parts)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: report.py OUT")
    out = sys.argv[1]
    body = [experiments_section(out), phase_section(out), tms_section(out), geometry_section(out)]
    if not any(body):
        sys.exit(f"report.py: nothing to report under {out}")
    page = ("<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
            "<title>superpose report</title>"
            f"<style>{STYLE}</style></head><body>\n<h1>superpose: toy models of superposition</h1>\n"
            + "\n".join(b for b in body if b) + "\n</body></html>\n")
    try:  # beside what scripts/run made, by the engine's rules (scripts/run_files.py)
        print(RunFiles.at(out).write_text("index.html", page))
    except RunFilesError as error:
        sys.exit(f"report.py: {error}")


if __name__ == "__main__":
    main()
