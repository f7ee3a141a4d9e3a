#!/usr/bin/env bash
# tests/test_python.sh ROOT WORK — the Python package as a new user gets it: its wheel built once
# (`pip wheel ROOT`: only PyPI and the compiler, the package builds the engine itself; auditwheel
# says what it needs of a Linux) and installed into a fresh virtual environment,
# then tests/python with pytest (every option a keyword, the stub under mypy, the command line's
# values exactly, numpy replay, ValueError, Ctrl-C and resume; a skipped check says why), the
# README's Python example as written, and examples/superpose.ipynb executed from top to bottom
# (nbclient) in a second fresh venv that has the wheel with its [notebook] extra only.
set -euo pipefail
root="$(cd "$1" && pwd)"
work="$2"
rm -rf "$work" && mkdir -p "$work"
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
pip=(-m pip --disable-pip-version-check)
echo "== pip wheel $root (builds the engine, once) =="
left_before="$(ls -d "$root"/build-python* 2>/dev/null || true)"
"$py" "${pip[@]}" wheel --quiet --no-deps -w "$work/dist" "$root"
if [ -z "$left_before" ] && ls -d "$root"/build-python* >/dev/null 2>&1; then
  echo "pip left a build directory in the source tree: $(ls -d "$root"/build-python*)"
  exit 1
fi
wheel="$(ls "$work"/dist/superpose-*.whl)"
echo "== pip install $(basename "$wheel")[test] =="
"$py" "${pip[@]}" install --quiet "$wheel[test]"
# What the wheel needs of a Linux (issue #30 wants manylinux_2_28 or older; told, not yet asserted).
"$work/venv/bin/auditwheel" show "$wheel" | tr '\n' ' ' | sed 's/  */ /g'; echo
echo "== pytest tests/python =="
(cd "$work" && SUPERPOSE_BINARY="${SUPERPOSE_BINARY:-$root/build/superpose}" \
  "$py" -m pytest -q -rs -p no:cacheprovider "$root/tests/python")
echo "== the README's Python example =="
"$py" - "$root/README.md" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r"```python\n(.*?)```", text, re.S)
assert blocks, "the README has no Python example"
for block in blocks:
    exec(compile(block, "README.md", "exec"), {})
print(f"ran {len(blocks)} Python block(s) of the README")
PY
echo "== examples/superpose.ipynb, in a venv with the wheel's [notebook] extra only =="
# (and what runs a notebook here: Jupyter's client and kernel, which a researcher has already)
python3 -m venv "$work/notebook-venv"
nb="$work/notebook-venv/bin/python"
"$nb" "${pip[@]}" install --quiet "$wheel[notebook]" nbclient nbformat ipykernel
(cd "$work" && "$nb" - "$root/examples/superpose.ipynb" "$work/superpose.executed.ipynb" <<'PY'
import sys
import nbclient, nbformat
notebook = nbformat.read(sys.argv[1], as_version=4)
nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3").execute()
nbformat.write(notebook, sys.argv[2])
images = sum("image/png" in output.get("data", {}) for cell in notebook.cells
             for output in cell.get("outputs", []))
assert images >= 3, f"the notebook drew {images} pictures, not 3"
print(f"executed without error: {len(notebook.cells)} cells, {images} pictures")
PY
)
echo "ok"
