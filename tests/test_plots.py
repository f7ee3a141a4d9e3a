#!/usr/bin/env python3
"""The pictures and the report page, end to end: small run directories made by the binary, every
plotting command on them, the report page loaded in headless Chromium with no console messages and
no broken links, and its screenshot taken (kept as WORK/report.png).

usage: test_plots.py BINARY WORK   (CTest runs it with the venv's python: scripts/python-deps)"""
import os
import shutil
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(os.path.dirname(HERE), "scripts")
sys.path.insert(0, SCRIPTS)
import check_page  # noqa: E402
from PIL import Image  # noqa: E402

BINARY = WORK = None


def superpose(*args):
    result = subprocess.run([BINARY, *args, "--backend", "cpu"], capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"superpose {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def plots(kind, directory):
    result = subprocess.run([sys.executable, os.path.join(SCRIPTS, "plots.py"), kind, directory],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"plots.py {kind} {directory} failed:\n{result.stderr}")
    return result.stdout.split()


class Pictures(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        shutil.rmtree(WORK, ignore_errors=True)
        cls.out = os.path.join(WORK, "out")
        os.makedirs(cls.out)
        superpose("experiments", "--seeds", "2", "--out", os.path.join(cls.out, "experiments"))
        superpose("phase-diagram", "--importance-cells", "4", "--density-cells", "3", "--seeds",
                  "1", "--steps", "200", "--batch", "128", "--eval-points", "200", "--out",
                  os.path.join(cls.out, "phase-diagram"))
        superpose("sweep", "--features", "5", "--hidden", "2", "--data-mode", "fresh", "--density",
                  "logspace(-1,0,3)", "--importance-decay", "0.9", "--steps", "200", "--batch",
                  "128", "--model", "linear,relu", "--seed", "range(0,3)", "--out",
                  os.path.join(cls.out, "geometry"))
        superpose("tms", "--only", "intro,collapse,privileged-basis", "--steps", "300", "--out",
                  os.path.join(cls.out, "tms"))
        superpose("train", "--features", "5", "--hidden", "2", "--data-mode", "fresh", "--steps",
                  "100", "--batch", "64", "--snapshot-every", "10", "--out",
                  os.path.join(WORK, "train-5-2"))

    def assertImage(self, path, frames=1):
        self.assertTrue(os.path.getsize(path) > 1000, path)
        with Image.open(path) as image:
            self.assertGreater(image.size[0], 200, path)
            self.assertGreaterEqual(getattr(image, "n_frames", 1), frames, path)

    def test_run_pictures_2to1(self):
        run = os.path.join(self.out, "experiments", "exp5-relu-sparse-equal")
        written = plots("run", run)
        names = sorted(os.path.basename(p) for p in written)
        self.assertEqual(names, ["dashboard.gif", "dashboard.html", "data.png", "mapping.png"])
        self.assertImage(os.path.join(run, "plots", "mapping.png"))
        self.assertImage(os.path.join(run, "plots", "data.png"))
        self.assertImage(os.path.join(run, "plots", "dashboard.gif"), frames=10)
        problems = check_page.check(os.path.join(run, "plots", "dashboard.html"),
                                    os.path.join(WORK, "dashboard.png"), height=700)
        self.assertEqual(problems, [])

    def test_run_pictures_5to2(self):
        run = os.path.join(WORK, "train-5-2")
        written = plots("run", run)
        self.assertIn(os.path.join(run, "plots", "mapping.png"), written)
        self.assertImage(os.path.join(run, "plots", "dashboard.gif"), frames=5)

    def test_sweep_pictures(self):
        directory = os.path.join(self.out, "geometry")
        plots("sweep", directory)
        for name in ("wtw.png", "norms.png", "arrows.png", "dimensionality.png"):
            self.assertImage(os.path.join(directory, "plots", name))

    def test_the_neuron_models_neurons(self):
        directory = os.path.join(self.out, "tms", "privileged-basis")
        written = plots("sweep", directory)
        self.assertIn(os.path.join(directory, "plots", "neurons.png"), written)
        self.assertImage(os.path.join(directory, "plots", "neurons.png"))
        geometry = plots("sweep", os.path.join(self.out, "geometry"))  # no neuron model: no picture
        self.assertFalse(any(path.endswith("neurons.png") for path in geometry))

    def test_sweep_pictures_pick_the_best_seed_of_every_cell(self):
        # linear and relu at three densities: six cells, each its own best of three seeds — never
        # one model's row for another's cell, nor one line through every seed.
        import csv
        import plots as plots_module
        directory = os.path.join(self.out, "geometry")
        axes, best = plots_module.sweep_cells(directory)
        self.assertEqual(len(best), 6)
        with open(os.path.join(directory, "results.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        for cell, chosen in best.items():
            peers = [r for r in rows
                     if (r["model"], r["sparsity"]) == (chosen["model"], chosen["sparsity"])]
            self.assertEqual(len(peers), 3, cell)
            self.assertEqual(float(chosen["eval_loss"]), min(float(r["eval_loss"]) for r in peers))
            self.assertEqual(chosen["model"], ["linear", "relu"][cell[0]])
        layout = plots_module.sweep_layout(axes, best, limit=8)
        self.assertEqual([label for label, _ in layout], ["model linear", "model relu"])
        for label, cells in layout:
            self.assertEqual(len(cells), 3)
            self.assertTrue(all(r["model"] == label.split()[-1] for _, r in cells))

    def test_pictures_never_follow_a_link_and_overwrite_keeps_yours(self):
        # A link planted where plots.py writes a picture: refused, naming it, the file it points
        # to intact; a link where plots/ belongs: the same. Pictures plots.py drew are superpose's
        # (the record lists them): --overwrite removes them and keeps a picture of your own.
        run = os.path.join(WORK, "train-links")
        superpose("train", "--steps", "20", "--out", run)
        victim = os.path.join(WORK, "victim.txt")
        with open(victim, "w") as f:
            f.write("the victim's own bytes")
        os.makedirs(os.path.join(run, "plots"))
        os.symlink(victim, os.path.join(run, "plots", "mapping.png"))
        result = subprocess.run([sys.executable, os.path.join(SCRIPTS, "plots.py"), "run", run],
                                capture_output=True, text=True)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("mapping.png' is a symbolic link", result.stderr)
        os.unlink(os.path.join(run, "plots", "mapping.png"))
        shutil.rmtree(os.path.join(run, "plots"))
        elsewhere = os.path.join(WORK, "elsewhere")
        os.makedirs(elsewhere, exist_ok=True)
        os.symlink(elsewhere, os.path.join(run, "plots"))
        result = subprocess.run([sys.executable, os.path.join(SCRIPTS, "plots.py"), "run", run],
                                capture_output=True, text=True)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("plots' is a symbolic link", result.stderr)
        self.assertEqual(os.listdir(elsewhere), [])
        with open(victim) as f:
            self.assertEqual(f.read(), "the victim's own bytes")
        os.unlink(os.path.join(run, "plots"))
        plots("run", run)
        with open(os.path.join(run, "plots", "fig1.png"), "w") as f:
            f.write("my own figure")
        superpose("train", "--steps", "21", "--overwrite", "--out", run)
        self.assertEqual([name for name in os.listdir(os.path.join(run, "plots"))
                          if not name.startswith(".")], ["fig1.png"])

    def test_phase_picture(self):
        directory = os.path.join(self.out, "phase-diagram")
        plots("phase", directory)
        self.assertImage(os.path.join(directory, "plots", "phase.png"))
        self.assertGreater(os.path.getsize(os.path.join(directory, "plots", "phase.pdf")), 1000)

    def test_report_page_loads_in_chromium(self):
        for run in sorted(os.listdir(os.path.join(self.out, "experiments"))):
            if os.path.isdir(os.path.join(self.out, "experiments", run)):
                plots("run", os.path.join(self.out, "experiments", run))
        plots("phase", os.path.join(self.out, "phase-diagram"))
        plots("sweep", os.path.join(self.out, "geometry"))
        for result in ("intro", "collapse"):
            plots("sweep", os.path.join(self.out, "tms", result))
        result = subprocess.run([sys.executable, os.path.join(SCRIPTS, "report.py"), self.out],
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(os.path.join(self.out, "index.html")) as f:
            page = f.read()
        for text in ("six experiments", "phase diagram", "Geometry", "phase.png", "dashboard.gif",
                     "wtw.png", "Toy Models of Superposition: the main results", "tms/intro/plots/"
                     "arrows.png", "a regular pentagon", "tms/collapse/results.csv"):
            self.assertIn(text, page)
        screenshot = os.path.join(WORK, "report.png")
        self.assertEqual(check_page.check(os.path.join(self.out, "index.html"), screenshot), [])
        self.assertImage(screenshot)
        print(f"\nscreenshot of the report: {screenshot}")

    def test_the_page_check_can_fail(self):
        bad = os.path.join(WORK, "bad")
        os.makedirs(bad, exist_ok=True)
        with open(os.path.join(bad, "index.html"), "w") as f:
            f.write('<!doctype html><img src="missing.png"><script>not_defined();</script>')
        problems = check_page.check(os.path.join(bad, "index.html"), os.path.join(bad, "s.png"))
        self.assertTrue(any("broken link" in p for p in problems), problems)
        self.assertTrue(any("not_defined" in p for p in problems), problems)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    BINARY, WORK = sys.argv[1], os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0], "-v", *sys.argv[3:]])
