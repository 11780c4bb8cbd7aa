#!/usr/bin/env bash
# Several (arm, seed) runs of one `run_experiments.py` experiment side by side on one GPU, in one device call.
# The experiments' GPU runs are small (width 256, batch 128) and leave most of an H200 idle, so a few at once cost
# each little; every run is its own process, writing its own record, so one that fails or overruns loses only itself.
#
#   bash train_scripts/stage_device_carry.sh      # here, first
#   run(carry=[".device_carry"], command="EXPERIMENT=fusion_gate RUNS='h100_recipe:0 mean:0 cpu_recipe:0' \
#       LIMIT=540 bash benchmarks/gpu_experiment_arms.sh")
#
# RUNS: space-separated arm:seed pairs. LIMIT: seconds each run may take (it is killed after that, and its record is
# missing). SCALE: the experiments' scale (default gpu; SCALE=test checks the plumbing on a CPU in a minute). The records (`<arm>_seed<k>.json`) and each run's log tail come back flat in $OUT; copy the records into
# benchmarks/results/experiments/gpu/<experiment>/ and summarise them on any machine with
#   python train_scripts/run_experiments.py --experiment <experiment> --seeds 0,1,2 --scale gpu --summarise
set -uo pipefail
: "${EXPERIMENT:?set EXPERIMENT (an experiment name of run_experiments.py)}" "${RUNS:?set RUNS (arm:seed ...)}"
LIMIT=${LIMIT:-540}
SCALE=${SCALE:-gpu}
OUT=${OUT:-/tmp/gpu_experiment_arms_out}
mkdir -p "$OUT"
source .device_carry/env.sh
export NCCL_NVLS_ENABLE=0
# The data pools are built once into the shared cache, before the runs start, so that they do not race to write it.
python3 -c "from train_scripts.experiments import EXPERIMENTS; from train_scripts.experiments.data import load_pools
s = EXPERIMENTS['$EXPERIMENT'].scales['$SCALE']; load_pools(s.pool_samples, s.pool_eval_samples)" > /tmp/pools.log 2>&1 \
  || { tail -n 20 /tmp/pools.log; exit 1; }
pids=()
for run in $RUNS; do
  arm=${run%%:*}; seed=${run##*:}
  timeout "$LIMIT" python3 train_scripts/run_experiments.py --experiment "$EXPERIMENT" --scale "$SCALE" --arms "$arm" \
    --seeds "$seed" --output_dir "/tmp/exp-$arm-$seed" > "/tmp/exp-$arm-$seed.log" 2>&1 &
  pids+=("$!")
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
for run in $RUNS; do
  arm=${run%%:*}; seed=${run##*:}
  cp /tmp/exp-"$arm-$seed"/"$SCALE"/"$EXPERIMENT"/*_seed*.json "$OUT/" 2>/dev/null || echo "no record: $arm seed $seed"
  echo "== $arm seed $seed"; tr '\r' '\n' < "/tmp/exp-$arm-$seed.log" | grep -v "Flattening\|Saving the dataset\|^ *$" | tail -n 4
done
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
exit "$status"
