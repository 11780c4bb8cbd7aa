"""Where an ARC-recipe training step spends its time on a GPU: wall time per step against the GPU's busy time, and
the top operators by CPU and by GPU time (torch.profiler over a window of steady-state steps, after compilation).

    python benchmarks/profile_arc_step.py --config_overrides '{"H_cycles":1,"L_cycles":1,"deep_supervision_steps":1}'

Any other flag goes to `run_multimodal.py --recipe arc` unchanged (defaults: preset arc, batch 128, bf16,
compiled blocks). Prints one JSON line `{"wall_ms_per_step", "gpu_busy_ms_per_step", "host_syncs_per_step", ...}` and
the two tables. The profiler's own overhead slows the host side, so the wall time is an upper bound.
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from transformers import TrainerCallback

from vision_trm.train_scripts import run_multimodal, training

WARM, WINDOW = int(os.environ.get("WARM", 60)), int(os.environ.get("WINDOW", 20))  # steps before the window (compilation, the first recompiles), steps profiled


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class ProfileWindow(TrainerCallback):
    def __init__(self):
        self.profiler, self.start = None, None
        self.summary = {}

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == WARM:
            sync()
            self.profiler = profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else []))
            self.profiler.__enter__()
            self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.profiler is not None and state.global_step == WARM + WINDOW:
            sync()
            wall = (time.perf_counter() - self.start) / WINDOW
            self.profiler.__exit__(None, None, None)
            events = self.profiler.key_averages()
            # Kernels only: an operator's row repeats the device time of the kernels it launched.
            busy = sum(e.self_device_time_total for e in events if e.device_type == DeviceType.CUDA) / WINDOW / 1e3
            syncs = sum(e.count for e in events if e.key in ("cudaStreamSynchronize", "cudaDeviceSynchronize"))
            launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cuLaunchKernelEx"))
            self.summary = {"wall_ms_per_step": round(wall * 1e3, 2), "gpu_busy_ms_per_step": round(busy, 2),
                            "gpu_busy_share": round(busy / (wall * 1e3), 3), "host_syncs_per_step": syncs / WINDOW,
                            "kernel_launches_per_step": launches / WINDOW}
            print(json.dumps(self.summary))
            print(events.table(sort_by="cpu_time_total", row_limit=30, max_name_column_width=60))
            print(events.table(sort_by="self_device_time_total", row_limit=25, max_name_column_width=60))
            self.profiler = None
            control.should_training_stop = True


class ProfiledTrainer(training.TRMTrainer):
    def __init__(self, *args, callbacks=None, **kwargs):
        super().__init__(*args, callbacks=list(callbacks or []) + [ProfileWindow()], **kwargs)


def main(argv: list[str]) -> None:
    run_multimodal.TRMTrainer = ProfiledTrainer
    defaults = ["--recipe", "arc", "--preset", "arc", "--bf16", "True", "--compile_blocks", "True",
                "--per_device_train_batch_size", "128", "--max_steps", str(WARM + WINDOW + 10),
                "--max_train_minutes", "0", "--save_steps", "1000000", "--logging_steps", "50",
                "--skip_final_eval", "True", "--disable_tqdm", "True", "--output_dir", "/tmp/profile-arc"]
    run_multimodal.main(defaults + argv)


if __name__ == "__main__":
    main(sys.argv[1:])
