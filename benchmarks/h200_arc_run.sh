#!/usr/bin/env bash
# The ARC recipe in one call of the GPU machine (the `device` tool), its results packed into $OUT, which brings
# back at most 8 files of at most 16 MiB: the weight shards (15 MB each), run.tar.gz (config, processor, logs,
# curves, the identity-view and the 32-view evaluation) and log.txt.
#
#   CARRY=arc bash train_scripts/stage_device_carry.sh                 # here, first: wheels + ARC data, ~3 MiB
#   run(carry=[".device_carry"], command="MINUTES=7 STEPS=2400 bash benchmarks/h200_arc_run.sh")
#   # to continue from weights a call brought back (in .device_carry/init: the shards + run.tar.gz as they came back,
#   # or the run folder unpacked, with its config.json):
#   run(carry=[".device_carry"], command="INIT=.device_carry/init MINUTES=7 STEPS=2400 bash benchmarks/h200_arc_run.sh")
#   # a follow-up call within the machine's warm window finds the last run folder still in /tmp/arc-run, so the next
#   # segment can start from it without a round trip (the weights still come back through $OUT):
#   run(command="test -f /tmp/arc-run/config.json && rm -rf /tmp/seg && mv /tmp/arc-run /tmp/seg && rm -f /tmp/seg/arc_eval_attempts.json && INIT=/tmp/seg MINUTES=8 STEPS=60000 FIT=1 bash benchmarks/h200_arc_run.sh")
#
#   # the ablation arms (README, "ARC ablation at equal budget"), one call each; the preset has 2D rotary positions
#   # since 2026-12-01: add \"position_encoding\":\"learned\" to OVERRIDES to rerun the arms recorded before that:
#   run(carry=[".device_carry"], command="OVERRIDES='{\"H_cycles\":1,\"L_cycles\":1,\"deep_supervision_steps\":1}' MINUTES=7.5 STEPS=6500 bash benchmarks/h200_arc_run.sh")
#   # cropped cell canvases: add \"crop_cell_canvas\":true to OVERRIDES (the recipe default --arc_canvas_slack 4 applies)
#   # without colour permutations: add \"arc_view_parts\":[\"dihedral\",\"translation\"] to OVERRIDES and vote with VIEWS=8
#   # inputs aligned to the demonstrations' output size (on in the CPU main job since 2026-12-07): add \"arc_input_alignment\":true to OVERRIDES
#   # FIT=f fits the cosine schedule to MINUTES (--schedule_fraction_at_time_cap f; STEPS is then only an upper bound):
#   # FIT=1 anneals to 0 at the cap; FIT=0.8 matches the plain-ViT arm, whose time cap came at 5,195 of 6,500 steps.
#   # DEMOS=1 also scores, here after the vote, the fit on what the run trained on: the 1,363 evaluation
#   # demonstrations in the identity view (--split evaluation_demonstrations --num_views 1; 20 min on a 2-core CPU),
#   # for weights too large to come back.
#   # EXTRA=arcagi2_training trains on the 233 ARC-AGI-2 training tasks new to ARC-AGI-1 too (--arc_extra_training_tasks).
#   # BF16=False COMPILE=False run it on a CPU (a check of the plumbing).
#   # TAG=x names this run's files in $OUT x-log.txt, x-run.tar.gz (and its folder /tmp/arc-run-x), so that two runs
#   # can share a call (benchmarks/h200_arc_paired.sh); WEIGHTS=0 leaves the weight shards on the machine.
#
# The record of a segment is written from what came back, not copied by hand:
#   python benchmarks/arc_run_record.py <the folder the files came back in> --segment N --device_command "..."
#
# Optimizer state does not come back (it is twice the weights), so a continued run starts a new warm-up and
# cosine schedule from the returned (EMA) weights; say so next to its figures.
set -euo pipefail
[ -n "${CARRY_INSTALLED:-}" ] || source .device_carry/env.sh   # h200_arc_paired.sh installs it once for both runs
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
: "${MINUTES:?set MINUTES (training wall-clock cap)}" "${STEPS:?set STEPS (length of the cosine schedule)}"
RUN=/tmp/arc-run${TAG:+-$TAG}
LOG="$OUT/${TAG:+$TAG-}log.txt"
ARCHIVE="${TAG:+$TAG-}run.tar.gz"
ARGS=(--recipe arc --preset "${PRESET:-arc}" --bf16 "${BF16:-True}" --compile_blocks "${COMPILE:-True}"
      --per_device_train_batch_size "${BATCH:-128}" --per_device_eval_batch_size 256 --max_steps "$STEPS"
      --max_train_minutes "$MINUTES" --learning_rate "${LR:-1e-3}" --warmup_steps "${WARMUP:-200}"
      --logging_steps 50 --save_steps 1000000 --output_dir "$RUN" --run_name arc-h200 --seed "${SEED:-0}")
if [ -n "${INIT:-}" ] && [ -f "$INIT/config.json" ]; then
  ARGS+=(--model_name_or_path "$INIT")   # a run folder as a call left it here, unpacked (shards, config, processor)
elif [ -n "${INIT:-}" ]; then
  mkdir -p "/tmp/init${TAG:+-$TAG}" && tar xzf "$INIT/run.tar.gz" -C "/tmp/init${TAG:+-$TAG}"
  cp "$INIT"/*.safetensors "/tmp/init${TAG:+-$TAG}/"
  ARGS+=(--model_name_or_path "/tmp/init${TAG:+-$TAG}")
fi
[ -z "${OVERRIDES:-}" ] || ARGS+=(--config_overrides "$OVERRIDES")
[ -z "${FIT:-}" ] || ARGS+=(--schedule_fraction_at_time_cap "$FIT")
[ -z "${PAIRS:-}" ] || ARGS+=(--arc_training_pairs "$PAIRS")   # PAIRS=evaluation_demos: the joint TTT phase
[ -z "${EXTRA:-}" ] || ARGS+=(--arc_extra_training_tasks "$EXTRA")
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$LOG"
python3 train_scripts/run_multimodal.py "${ARGS[@]}" 2>&1 | grep --line-buffered -v "it/s\]$" | tee -a "$LOG"
# The weights and the run folder come back first, so a call cut short during the 32-view evaluation keeps them.
[ "${WEIGHTS:-1}" = 0 ] || cp "$RUN"/*.safetensors "$OUT/"
tar czf "$OUT/$ARCHIVE" -C "$RUN" --exclude='checkpoint-*' --exclude='*.safetensors' .
python3 train_scripts/evaluate_arc.py --model_name_or_path "$RUN" --num_views "${VIEWS:-32}" \
  --output_json "$RUN/arc_eval_attempts.json" 2>&1 | grep --line-buffered -v "it/s\]$" | tee -a "$LOG" || true
if [ -n "${DEMOS:-}" ]; then
  python3 train_scripts/evaluate_arc.py --model_name_or_path "$RUN" --split evaluation_demonstrations --num_views 1 \
    --output_json "$RUN/arc_demonstrations_fit.json" 2>&1 | grep --line-buffered -v "it/s\]$" | tee -a "$LOG" || true
fi
# Now with the evaluation; packed aside first, so a cut here leaves the earlier archive whole.
tar czf "/tmp/$ARCHIVE" -C "$RUN" --exclude='checkpoint-*' --exclude='*.safetensors' . && mv -f "/tmp/$ARCHIVE" "$OUT/"
ls -la "$OUT"
