#!/usr/bin/env bash
# Two ARC arms side by side on one GPU in one device call, for a comparison in which both arms meet the same machine
# state: the same command's throughput varied from 1,214 to 1,736 samples/s between calls, more than most changes
# under test. A full-canvas step leaves the GPU idle about half the time (host-bound), so two runs share it at little
# cost to either; each gets the same MINUTES. Every variable of benchmarks/h200_arc_run.sh applies to both arms;
# ARM_A and ARM_B add each arm's own (`VAR=value ...`). The weights stay on the machine (WEIGHTS=0); each arm's log
# and run folder come back as a-log.txt, a-run.tar.gz, b-log.txt, b-run.tar.gz.
#
#   bash train_scripts/stage_device_carry.sh          # here, first (CARRY=arc is enough for ARC arms alone)
#   run(carry=[".device_carry"], command="OVERRIDES='{...}' MINUTES=7 STEPS=60000 FIT=0.8 ARM_A='SEED=0' \
#       ARM_B='SEED=0 EXTRA=arcagi2_training' bash benchmarks/h200_arc_paired.sh")
set -euo pipefail
: "${ARM_A?set ARM_A (the first arm's own variables, may be empty)}" "${ARM_B:?set ARM_B (the second arm's own variables)}"
source .device_carry/env.sh
export CARRY_INSTALLED=1 WEIGHTS=0
env $ARM_A TAG=a bash benchmarks/h200_arc_run.sh > /tmp/arm-a.out 2>&1 &
first=$!
env $ARM_B TAG=b bash benchmarks/h200_arc_run.sh > /tmp/arm-b.out 2>&1 &
second=$!
status=0
wait "$first" || status=$?
wait "$second" || status=$?
tail -n 25 /tmp/arm-a.out /tmp/arm-b.out
exit "$status"
