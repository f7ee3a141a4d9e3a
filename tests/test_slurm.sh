#!/usr/bin/env bash
# tests/test_slurm.sh SUPERPOSE WORK — a sweep split by a real Slurm (Debian's slurm-wlm: slurmctld,
# slurmd and munged started here by tests/slurm/start-slurm, as root) equals one process's, byte
# for byte: a 3-task job array through scripts/slurm/submit with the merge as a dependent job, and
# the one-node form, `srun --ntasks=3 superpose sweep ... --shard auto`, then `superpose merge`.
# The work folder is private (mode 700), as a checkout in a home directory often is. Skipped (77),
# saying why, where it cannot start Slurm: not root, or slurm-wlm not installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binary="$1"
work="$2"
[ "$(id -u)" = 0 ] || { echo "skipped: starting slurmctld, slurmd and munged needs root"; exit 77; }
for command in slurmctld slurmd sbatch srun munged runuser; do
  command -v "$command" >/dev/null 2>&1 ||
    { echo "skipped: no $command (scripts/test installs slurm-wlm and munge)"; exit 77; }
done
rm -rf "$work" && mkdir -p "$work"
# A private folder, as a checkout in a home directory often is (mode 700): the daemons that drop
# to their own user (munged) must not need to reach into it (tests/slurm/start-slurm).
chmod 700 "$work"
trap '"$root/tests/slurm/stop-slurm" "$work/slurm"' EXIT
SLURM_CONF="$("$root/tests/slurm/start-slurm" "$work/slurm")"
export SLURM_CONF

options=(sweep --backend cpu --threads 1 --features 5 --hidden 2 --data-mode fresh --batch 64
  --steps 60 --seed 'range(0,24)' --density 'logspace(-1,0,2)' --chunk-models 4)
"$binary" "${options[@]}" --out "$work/one" > /dev/null

echo "== a job array of 3 shards and a dependent merge =="
SUPERPOSE="$binary" timeout 300 "$root/scripts/slurm/submit" --tasks 3 --gpus-per-task 0 \
  --cpus-per-task 1 --wait "$work/array" -- "${options[@]}"
cmp "$work/one/results.csv" "$work/array/results.csv"
for task in 1 2 3; do
  grep -q "sweep shard $task/3: 4 of the sweep's 12 chunks" "$work"/array.slurm/*_"$task".out ||
    { echo "array task $task did not train shard $task/3:"; cat "$work"/array.slurm/*.out; exit 1; }
done
grep -q "merged 48 models from 12 chunks" "$work"/array.slurm/merge-*.out

echo "== one node: srun --ntasks=3, then merge =="
timeout 300 srun --overcommit --ntasks=3 --cpus-per-task=1 "$binary" "${options[@]}" \
  --shard auto --out "$work/srun" > "$work/srun.log" 2>&1
grep -c "shard [123]/3" "$work/srun.log" | grep -qx 3 || { cat "$work/srun.log"; exit 1; }
"$binary" merge "$work/srun" > /dev/null
cmp "$work/one/results.csv" "$work/srun/results.csv"
echo "ok: the job array's and srun's merged results.csv equal one process's byte for byte"
