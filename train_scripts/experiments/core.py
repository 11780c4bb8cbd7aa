"""The experiment machinery: what an experiment is, the training loop every arm shares, statistics, verdicts, files.

An `Experiment` is a claim from a design note turned into arms (one config change each) that are trained with
several seeds. Each (arm, seed) run returns a `RunResult`; the runner writes one JSON per run and a summary with
mean ± 95% t-interval per arm and metric, the comparisons that decide the verdict, and a plot.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import matplotlib
import numpy as np
import torch
from tqdm.auto import tqdm

matplotlib.use("Agg")  # files only: the runner runs on machines without a display
import matplotlib.pyplot as plt  # noqa: E402

SCALES = ("test", "cpu", "gpu")

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond 30 the normal 1.96 is within 2%).
# A table rather than a scipy dependency for one function.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_quantile_975(degrees_of_freedom: float) -> float:
    """The 0.975 quantile of Student's t; fractional (Welch) degrees of freedom round down (conservative)."""
    if not degrees_of_freedom >= 1:
        return float("nan")
    index = int(math.floor(degrees_of_freedom))
    return _T975[index - 1] if index <= len(_T975) else 1.96


# ------------------------------------------------------------------------------------------------ definitions
@dataclass
class Scale:
    """The size of one run at one scale: steps, batch, evaluation sizes and config overrides."""

    steps: int
    batch_size: int
    learning_rate: float = 1e-3
    warmup_steps: int = 10
    eval_every: int = 0  # 0 = evaluate once, at the end
    eval_images: int = 500
    eval_texts: int = 200
    overrides: dict = field(default_factory=dict)  # TRMConfig fields shared by every arm at this scale
    extra: dict = field(default_factory=dict)  # experiment-specific sizes
    pool_samples: int = 12000  # training rows per source (Fashion-MNIST, KJV) in the data pools
    pool_eval_samples: int = 1000  # held-out rows per source
    bf16: bool = False  # bf16 autocast for training and evaluation (the product's `--bf16`), for the GPU runs


@dataclass
class Arm:
    """One condition of an experiment: a name, the config fields it changes, and options for the run function."""

    name: str
    overrides: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    description: str = ""


@dataclass
class Comparison:
    """`better` should beat `worse` on `metric` (higher is better when `higher_is_better`). `claimed` is the
    effect size the design note claims, in the metric's units (e.g. 0.12 for "+12%" of accuracy), if any."""

    metric: str
    better: str
    worse: str
    higher_is_better: bool = True
    claimed: float | None = None
    paired: bool = False  # per-seed differences (e.g. two supervision steps of the same model)
    note: str = ""
    worse_metric: str | None = None  # compare `better`'s metric with this metric of `worse` (default: the same)


@dataclass
class Experiment:
    name: str
    claim: str
    source: str
    hypothesis: str
    arms: list[Arm]
    scales: dict[str, Scale]
    run: Callable  # run(experiment, arm, seed, scale) -> RunResult
    comparisons: list[Comparison] = field(default_factory=list)
    plot_metrics: tuple = ()  # bar chart: mean ± CI per arm
    plot_curve: str | None = None  # curve name plotted over steps (mean over seeds)
    pending: str | None = None  # why it cannot run yet (e.g. the ARC recipe); the command is still listed

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise ValueError(f"experiment {self.name!r} has no arm {name!r}; arms: {[a.name for a in self.arms]}")


@dataclass
class RunResult:
    metrics: dict[str, float]
    curves: dict[str, list] = field(default_factory=dict)  # name -> [[step, value], ...]
    parameters: dict[str, int] = field(default_factory=dict)
    stability: dict = field(default_factory=dict)
    wall_time_s: float = 0.0
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------- training
@dataclass
class TrainLog:
    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    curves: dict[str, list] = field(default_factory=dict)
    diverged_at: int | None = None
    train_time_s: float = 0.0

    def add(self, name: str, step: int, value) -> None:
        if isinstance(value, torch.Tensor):
            value = value.detach()
        if value is not None:
            self.curves.setdefault(name, []).append([step, float(value)])


def training_device() -> torch.device:
    """The GPU when there is one (the `--scale gpu` runs), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def on_device(batch: dict, device) -> dict:
    return {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


class _PrefetchedBatches:
    """`next_batch(step)` for the steps 0, 1, ... of one loop, each computed on a worker thread while the step
    before it trains.

    Collating a batch is host work inside every step; the model's kernels and the loss read-back release the GIL,
    so the two overlap. The calls
    happen in the same order and number as without the thread (step k+1 is asked for only once step k is
    handed out, and never beyond the last step), so a seeded `next_batch` gives the same batches.
    """

    def __init__(self, next_batch: Callable, steps: int):
        self._next_batch = next_batch
        self._steps = steps
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="next_batch")
        self._pending = self._worker.submit(next_batch, 0) if steps > 0 else None

    def __call__(self, step: int) -> dict:
        batch = self._pending.result()
        self._pending = self._worker.submit(self._next_batch, step + 1) if step + 1 < self._steps else None
        return batch

    def settle(self) -> None:
        """Wait until the batch in flight is drawn. The evaluations render through the same processor and its
        font and glyph caches, so they run only while the worker is idle."""
        if self._pending is not None:
            self._pending.exception()

    def close(self) -> None:
        # A loop that stops early (divergence) leaves one batch in flight: wait for it rather than race it.
        self._worker.shutdown(wait=True)


def train_loop(model, next_batch: Callable, scale: Scale, seed: int, evaluate: Callable | None = None,
               on_step: Callable | None = None, steps: int | None = None, parameters=None) -> TrainLog:
    """AdamW (weight decay 0.01, linear warm-up then constant, as the main job), gradient clipping at 1.0.

    `next_batch(step)` returns the model's keyword inputs, called once per step in order (one step ahead, on a
    worker thread); the model returns an object with `.loss`.
    `on_step(step, outputs, log)` runs after `backward` and before the optimiser step (gradients are readable);
    `evaluate(model) -> dict` runs every `scale.eval_every` steps and at the end, its values become curves.
    A non-finite loss stops the run (`diverged_at`); nothing after it is trained.
    """
    steps = scale.steps if steps is None else steps
    batches = _PrefetchedBatches(next_batch, steps)

    def evaluate_alone(trained):
        batches.settle()
        return evaluate(trained)

    try:
        return _train(model, batches, scale, evaluate and evaluate_alone, on_step, steps, parameters)
    finally:
        batches.close()


def _train(model, next_batch: Callable, scale: Scale, evaluate, on_step, steps: int, parameters) -> TrainLog:
    params = trainable_parameters(model) if parameters is None else parameters
    optimizer = torch.optim.AdamW(params, lr=scale.learning_rate, weight_decay=0.01)
    warmup = max(scale.warmup_steps, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    log = TrainLog()
    device = next(model.parameters()).device
    start = time.perf_counter()
    # A bar every 30 s (also into a log file): a GPU run's rate is readable before it ends or is stopped.
    for step in tqdm(range(steps), desc="training", mininterval=30, leave=False):
        model.train()
        with _autocast(scale, device):
            outputs = model(**on_device(next_batch(step), device))
        loss = outputs.loss
        if not torch.isfinite(loss.detach()):
            log.diverged_at = step
            break
        loss.backward()
        log.grad_norms.append(float(torch.nn.utils.clip_grad_norm_(params, 1.0)))
        log.losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, outputs, log)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if evaluate is not None and scale.eval_every and (step + 1) % scale.eval_every == 0 and step + 1 < steps:
            log.train_time_s += time.perf_counter() - start
            _record_eval(log, step + 1, model, evaluate, scale)
            start = time.perf_counter()
    log.train_time_s += time.perf_counter() - start
    if evaluate is not None:
        _record_eval(log, len(log.losses), model, evaluate, scale)
    return log


def _autocast(scale: Scale, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=scale.bf16)


def _record_eval(log: TrainLog, step: int, model, evaluate: Callable, scale: Scale) -> None:
    model.eval()
    with torch.no_grad(), _autocast(scale, next(model.parameters()).device):
        values = evaluate(model)
    for name, value in values.items():
        if isinstance(value, (int, float)):
            log.add(name, step, value)
    log.curves.setdefault("train_seconds", []).append([step, log.train_time_s])


def stability_report(log: TrainLog, window: int = 20, factor: float = 2.0) -> dict:
    """Loss spikes (a loss above `factor` x the median of the previous `window` losses, after the first window),
    divergence, the last losses and the largest gradient norm before clipping."""
    losses = log.losses
    spikes = [i for i in range(window, len(losses)) if losses[i] > factor * statistics.median(losses[i - window:i])]
    tail = losses[-window:] if losses else [float("nan")]
    return {
        "loss_spikes": len(spikes),
        "first_spike_steps": spikes[:5],
        "diverged": log.diverged_at is not None,
        "diverged_at_step": log.diverged_at,
        "steps_run": len(losses),
        "first_loss": losses[0] if losses else float("nan"),
        "final_loss": statistics.fmean(tail),
        "max_grad_norm": max(log.grad_norms) if log.grad_norms else float("nan"),
    }


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """Total and trainable parameters, and the parameters of each top-level block of the base model."""
    base = getattr(model, "trm", model)
    counts = {"total": sum(p.numel() for p in model.parameters()),
              "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    for name, child in base.named_children():
        count = sum(p.numel() for p in child.parameters())
        if count:
            counts[f"block:{name}"] = count
    return counts


def optimizer_memory_bytes(model: torch.nn.Module) -> int:
    """Bytes of gradients + AdamW moments for the trainable parameters (fp32): 12 bytes each. The part of training
    memory that LoRA or freezing changes; activations come on top (`peak_gpu_memory_GiB` on a GPU)."""
    return 12 * sum(p.numel() for p in model.parameters() if p.requires_grad)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


# --------------------------------------------------------------------------------------------- statistics
def mean_ci(values) -> dict:
    """Mean, 95% t-interval half-width, standard deviation, n, and the values."""
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(values)
    if n == 0:
        return {"mean": float("nan"), "ci95": float("nan"), "std": float("nan"), "n": 0, "values": []}
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if n > 1 else float("nan")
    half = t_quantile_975(n - 1) * std / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": mean, "ci95": half, "std": std, "n": n, "values": values}


def difference_ci(better, worse, paired: bool = False) -> dict:
    """Mean difference `better - worse` with a 95% interval: paired t on per-seed differences, or Welch's t."""
    better, worse = [float(v) for v in better], [float(v) for v in worse]
    if paired:
        if len(better) != len(worse):
            raise ValueError(f"paired comparison needs as many values on each side, got {len(better)} and {len(worse)}")
        summary = mean_ci([b - w for b, w in zip(better, worse)])
        return {"difference": summary["mean"], "low": summary["mean"] - summary["ci95"],
                "high": summary["mean"] + summary["ci95"], "test": "paired t"}
    nb, nw = len(better), len(worse)
    difference = statistics.fmean(better) - statistics.fmean(worse)
    if nb < 2 or nw < 2:
        return {"difference": difference, "low": float("nan"), "high": float("nan"), "test": "Welch t"}
    vb, vw = statistics.variance(better) / nb, statistics.variance(worse) / nw
    standard_error = math.sqrt(vb + vw)
    if standard_error == 0:
        return {"difference": difference, "low": difference, "high": difference, "test": "Welch t"}
    df = (vb + vw) ** 2 / ((vb**2 / (nb - 1) if nb > 1 else 0) + (vw**2 / (nw - 1) if nw > 1 else 0))
    half = t_quantile_975(df) * standard_error
    return {"difference": difference, "low": difference - half, "high": difference + half, "test": "Welch t",
            "welch_df": df}


def verdict(interval: dict, claimed: float | None = None) -> str:
    """`supported` when the 95% interval of the (signed, better - worse) difference lies above 0, `refuted` when it
    lies below 0 or when it excludes the claimed effect while containing 0, else `inconclusive`."""
    low, high = interval["low"], interval["high"]
    if not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive (no interval: fewer than 2 seeds)"
    if low > 0:
        if claimed is not None and high < claimed:
            return "supported (smaller effect than claimed)"
        return "supported"
    if high < 0:
        return "refuted"
    if claimed is not None and high < claimed:
        return "refuted (claimed effect excluded; no effect detected)"
    return "inconclusive"


def summarise(experiment: Experiment, results: dict[str, dict[int, RunResult]]) -> dict:
    """Per arm and metric: mean ± 95% CI over seeds; the comparisons with their interval and verdict."""
    arms = {}
    for arm_name, by_seed in results.items():
        metric_names = sorted({name for result in by_seed.values() for name in result.metrics})
        seeds = sorted(by_seed)
        arms[arm_name] = {
            "seeds": seeds,
            "metrics": {name: mean_ci([by_seed[s].metrics.get(name) for s in seeds]) for name in metric_names},
            "parameters": next(iter(by_seed.values())).parameters,
            "wall_time_s": mean_ci([by_seed[s].wall_time_s for s in seeds]),
            "stability": {
                "loss_spikes_total": sum(by_seed[s].stability.get("loss_spikes", 0) for s in seeds),
                "diverged_runs": sum(bool(by_seed[s].stability.get("diverged")) for s in seeds),
                "final_loss": mean_ci([by_seed[s].stability.get("final_loss") for s in seeds]),
                "max_grad_norm": max((by_seed[s].stability.get("max_grad_norm", float("nan")) for s in seeds),
                                     default=float("nan")),
            },
        }
    comparisons = []
    for comparison in experiment.comparisons:
        if comparison.better not in results or comparison.worse not in results:
            continue
        seeds = sorted(set(results[comparison.better]) & set(results[comparison.worse]))
        better = [results[comparison.better][s].metrics.get(comparison.metric) for s in seeds]
        worse = [results[comparison.worse][s].metrics.get(comparison.worse_metric or comparison.metric) for s in seeds]
        if any(v is None for v in better + worse):
            continue
        sign = 1.0 if comparison.higher_is_better else -1.0
        interval = difference_ci([sign * v for v in better], [sign * v for v in worse], comparison.paired)
        comparisons.append({**asdict(comparison), **interval, "verdict": verdict(interval, comparison.claimed)})
    return {"arms": arms, "comparisons": comparisons}


# ---------------------------------------------------------------------------------------------------- files
def describe_hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} x{torch.cuda.device_count()}, torch {torch.__version__}"
    model_name = ""
    try:
        with open("/proc/cpuinfo") as handle:
            model_name = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    description = f"{platform.machine()} CPU {model_name}, nproc {os.cpu_count()}, torch {torch.__version__}"
    return description.replace("  ", " ")


def run_metadata(command: str, scale: str, seeds) -> dict:
    return {"command": command, "scale": scale, "seeds": list(seeds), "hardware": describe_hardware(),
            "date": datetime.date.today().isoformat(), "torch_threads": torch.get_num_threads()}


def write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=_json_default))


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def format_summary_markdown(experiment: Experiment, summary: dict, metadata: dict) -> str:
    """The summary as markdown tables: arms × metrics (mean ± 95% CI), parameters, time, stability, comparisons."""
    lines = [f"# {experiment.name}", "", f"Claim ({experiment.source}): {experiment.claim}", "",
             f"Command: `{metadata['command']}`  ", f"Hardware: {metadata['hardware']}; date {metadata['date']}; "
             f"seeds {metadata['seeds']}; scale {metadata['scale']}", ""]
    metric_names = sorted({m for arm in summary["arms"].values() for m in arm["metrics"]})
    lines += ["| arm | " + " | ".join(metric_names) + " |", "|---|" + "---|" * len(metric_names)]
    for name, arm in summary["arms"].items():
        cells = [_fmt(arm["metrics"].get(m)) for m in metric_names]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| arm | parameters (trainable) | wall time per run (s) | loss spikes | diverged runs | final loss |",
              "|---|---|---|---|---|---|"]
    for name, arm in summary["arms"].items():
        params = arm["parameters"]
        lines.append(f"| {name} | {params.get('total', 0):,} ({params.get('trainable', 0):,}) | "
                     f"{_fmt(arm['wall_time_s'], 3)} | {arm['stability']['loss_spikes_total']} | "
                     f"{arm['stability']['diverged_runs']} | {_fmt(arm['stability']['final_loss'])} |")
    if summary["comparisons"]:
        lines += ["", "| comparison | metric | difference (95% CI) | test | claimed | verdict |",
                  "|---|---|---|---|---|---|"]
        for c in summary["comparisons"]:
            direction = "" if c["higher_is_better"] else " (lower is better; sign flipped)"
            against = f" vs {c['worse_metric']}" if c.get("worse_metric") else ""
            lines.append(f"| {c['better']} vs {c['worse']} | {c['metric']}{against}{direction} | "
                         f"{c['difference']:+.4f} {_interval(c)} | {c['test']} | "
                         f"{'' if c['claimed'] is None else c['claimed']} | {c['verdict']} |")
    return "\n".join(lines) + "\n"


def _interval(comparison: dict) -> str:
    low, high = comparison["low"], comparison["high"]
    if not (math.isfinite(low) and math.isfinite(high)):
        return "(no interval: 1 seed)"
    return f"[{low:+.4f}, {high:+.4f}]"


def _fmt(summary: dict | None, digits: int = 4) -> str:
    if not summary or not summary.get("n"):
        return "—"
    if summary["n"] < 2 or not math.isfinite(summary["ci95"]):
        return f"{summary['mean']:.{digits}g}"
    return f"{summary['mean']:.{digits}g} ± {summary['ci95']:.2g}"


def plot_summary(experiment: Experiment, summary: dict, results: dict[str, dict[int, RunResult]], path: Path) -> Path:
    """Bars (mean ± 95% CI per arm) for `plot_metrics` and the mean curve over seeds of `plot_curve`."""
    metrics = [m for m in experiment.plot_metrics if any(m in a["metrics"] for a in summary["arms"].values())]
    panels = len(metrics) + (1 if experiment.plot_curve else 0)
    figure, axes = plt.subplots(1, max(panels, 1), figsize=(4.2 * max(panels, 1), 3.6), squeeze=False)
    arm_names = list(summary["arms"])
    for axis, metric in zip(axes[0], metrics):
        means = [summary["arms"][a]["metrics"].get(metric, {}).get("mean", float("nan")) for a in arm_names]
        errors = [summary["arms"][a]["metrics"].get(metric, {}).get("ci95", 0.0) for a in arm_names]
        errors = [e if math.isfinite(e) else 0.0 for e in errors]
        axis.bar(range(len(arm_names)), means, yerr=errors, capsize=3, color="tab:blue", alpha=0.8)
        for index, arm in enumerate(arm_names):
            values = summary["arms"][arm]["metrics"].get(metric, {}).get("values", [])
            axis.scatter([index] * len(values), values, color="black", s=8, zorder=3)
        axis.set_xticks(range(len(arm_names)), arm_names, rotation=35, ha="right", fontsize=7)
        axis.set_title(metric, fontsize=9)
    if experiment.plot_curve:
        axis = axes[0][len(metrics)]
        for arm, by_seed in results.items():
            curves = [r.curves[experiment.plot_curve] for r in by_seed.values() if r.curves.get(experiment.plot_curve)]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            steps = [c[0] for c in curves[0][:length]]
            mean = np.mean([[point[1] for point in c[:length]] for c in curves], axis=0)
            axis.plot(steps, mean, label=arm)
        axis.set_title(f"{experiment.plot_curve} (mean over seeds)", fontsize=9)
        axis.set_xlabel("step")
        axis.legend(fontsize=6)
    figure.suptitle(experiment.name, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
