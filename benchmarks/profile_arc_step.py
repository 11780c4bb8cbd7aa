"""Where an ARC-recipe training step spends its time on a GPU: the steady rate, the wall time per step against the
GPU's busy time with the top operators (torch.profiler), and where the host still waits for the device.

    python benchmarks/profile_arc_step.py --config_overrides '{"H_cycles":1,"L_cycles":1,"deep_supervision_steps":1}'

Any other flag goes to `run_multimodal.py --recipe arc` unchanged (defaults: preset arc, batch 128, bf16, compiled
blocks). After `WARM` steps (compilation, the first recompiles) three windows run back to back:

1. `TIMED` steps unprofiled: `steady_ms_per_step` and `steady_samples_per_s` (the rate a run trains at);
2. `WINDOW` steps under torch.profiler: `gpu_busy_ms_per_step` (kernel time), `host_syncs_per_step`
   (cudaStreamSynchronize + cudaDeviceSynchronize), kernel launches, and the two top-operator tables; the profiler
   slows the host, so this window's wall time is an upper bound;
3. `SYNC_STEPS` steps under `torch.cuda.set_sync_debug_mode("warn")`: every operation that synchronises the host
   with the GPU, counted per step by where it was called (`sync_sites_per_step`).

Prints one JSON line with all of it (and `torch`, `device`); `OUT_JSON=path` also writes it there.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time
import traceback
import warnings

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from transformers import TrainerCallback

from vision_trm.train_scripts import run_multimodal, training

WARM, TIMED = int(os.environ.get("WARM", 60)), int(os.environ.get("TIMED", 100))
WINDOW, SYNC_STEPS = int(os.environ.get("WINDOW", 20)), int(os.environ.get("SYNC_STEPS", 5))


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def call_site() -> str:
    """The innermost frames of this package (or of transformers / accelerate) that led to the current warning."""
    keep = ("train_scripts", "modeling_trm", "processing", "configuration", "transformers", "accelerate")
    frames = [f for f in traceback.extract_stack()[:-2] if any(k in f.filename for k in keep)
              and "profile_arc_step" not in f.filename]
    return " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}:{f.name}" for f in frames[-3:][::-1]) or "?"


class Windows(TrainerCallback):
    def __init__(self):
        self.batch_size = None
        self.summary = {}
        self.profiler = self.start = None
        self.sites = collections.Counter()
        self._showwarning = None

    def on_step_begin(self, args, state, control, **kwargs):
        step = state.global_step
        if step in (WARM, WARM + TIMED):
            sync()
            self.start = time.perf_counter()
        if step == WARM + TIMED:
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
            self.profiler = profile(activities=activities)
            self.profiler.__enter__()
        if step == WARM + TIMED + WINDOW and torch.cuda.is_available():
            self._record_syncs(True)

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        if step == WARM + TIMED:
            sync()
            wall = (time.perf_counter() - self.start) / TIMED
            samples = args.per_device_train_batch_size * args.gradient_accumulation_steps
            self.summary.update(steady_ms_per_step=round(wall * 1e3, 2),
                                steady_samples_per_s=round(samples / wall, 1))
        if step == WARM + TIMED + WINDOW:
            sync()
            self._close_profile((time.perf_counter() - self.start) / WINDOW)
        if step == WARM + TIMED + WINDOW + SYNC_STEPS:
            if torch.cuda.is_available():
                self._record_syncs(False)
            self.summary["sync_sites_per_step"] = {site: n / SYNC_STEPS for site, n in self.sites.most_common()}
            self.summary.update(torch=torch.__version__, device=torch.cuda.get_device_name()
                                if torch.cuda.is_available() else "cpu")
            print(json.dumps(self.summary))
            if os.environ.get("OUT_JSON"):
                with open(os.environ["OUT_JSON"], "w") as handle:
                    json.dump(self.summary, handle, indent=1)
            control.should_training_stop = True

    def _close_profile(self, wall: float) -> None:
        self.profiler.__exit__(None, None, None)
        events = self.profiler.key_averages()
        self.profiler = None
        # Kernels only: an operator's row repeats the device time of the kernels it launched.
        busy = sum(e.self_device_time_total for e in events if e.device_type == DeviceType.CUDA) / WINDOW / 1e3
        syncs = sum(e.count for e in events if e.key in ("cudaStreamSynchronize", "cudaDeviceSynchronize"))
        launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cuLaunchKernelEx"))
        self.summary.update(profiled_wall_ms_per_step=round(wall * 1e3, 2), gpu_busy_ms_per_step=round(busy, 2),
                            gpu_busy_share=round(busy / (wall * 1e3), 3), host_syncs_per_step=syncs / WINDOW,
                            kernel_launches_per_step=launches / WINDOW)
        print(events.table(sort_by="cpu_time_total", row_limit=30, max_name_column_width=60))
        print(events.table(sort_by="self_device_time_total", row_limit=25, max_name_column_width=60))

    def _record_syncs(self, on: bool) -> None:
        if on:
            self._showwarning = warnings.showwarning
            warnings.simplefilter("always")
            warnings.showwarning = lambda message, *rest: self.sites.update(
                [call_site()] if "synchroniz" in str(message) else [])
            torch.cuda.set_sync_debug_mode("warn")
        else:
            torch.cuda.set_sync_debug_mode("default")
            warnings.showwarning = self._showwarning


class ProfiledTrainer(training.TRMTrainer):
    def __init__(self, *args, callbacks=None, **kwargs):
        super().__init__(*args, callbacks=list(callbacks or []) + [Windows()], **kwargs)


def main(argv: list[str]) -> None:
    run_multimodal.TRMTrainer = ProfiledTrainer
    steps = WARM + TIMED + WINDOW + SYNC_STEPS + 10
    defaults = ["--recipe", "arc", "--preset", "arc", "--bf16", "True", "--compile_blocks", "True",
                "--per_device_train_batch_size", "128", "--max_steps", str(steps),
                "--max_train_minutes", "0", "--save_steps", "1000000", "--logging_steps", "50",
                "--skip_final_eval", "True", "--disable_tqdm", "True", "--output_dir", "/tmp/profile-arc"]
    run_multimodal.main(defaults + argv)


if __name__ == "__main__":
    main(sys.argv[1:])
