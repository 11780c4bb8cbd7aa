"""Uploads a trained TRM folder (model + processor + code + generated model card) or the Gradio Space to the Hub.

Model:
    python train_scripts/push_to_hub.py --model_dir outputs/run --repo_id user/vision-trm-tiny \
        --eval_results_file outputs/run/eval_results.json
Dry run (writes exactly the files that would be uploaded, uploads nothing):
    python train_scripts/push_to_hub.py --model_dir outputs/run --repo_id user/vision-trm-tiny --dry_run \
        --dry_run_dir outputs/hub_dry_run
Space (the `spaces_app/` folder as a Gradio Space; `--space_model_id` sets its MODEL_ID variable):
    python train_scripts/push_to_hub.py --space --repo_id user/vision-trm-demo --space_model_id user/vision-trm-tiny

Authentication is huggingface_hub's usual one (`hf auth login` or `HF_TOKEN`).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make `train_scripts` importable
    sys.path.insert(0, str(REPO_ROOT))

from train_scripts.model_card import write_model_card  # noqa: E402

logger = logging.getLogger("push_to_hub")

SPACES_APP_DIR = REPO_ROOT / "spaces_app"

# What never goes up: Trainer state, optimiser/RNG states, intermediate checkpoints, logs, caches.
MODEL_IGNORE_PATTERNS = [
    "checkpoint-*",
    "runs",
    "optimizer.pt",
    "scheduler.pt",
    "rng_state*.pth",
    "training_args.bin",
    "trainer_state.json",
    "__pycache__",
    "*.pyc",
    ".git",
    ".cache",
    "README.md",  # replaced by the generated card
]
SPACE_IGNORE_PATTERNS = ["__pycache__", "*.pyc", ".git", ".cache", "flagged", ".gradio", "screenshots", "*.log"]
REQUIRED_MODEL_FILES = ["config.json", "configuration_trm.py", "modeling_trm.py"]


@dataclass
class PushArguments:
    repo_id: str = field(metadata={"help": "Target Hub repository, e.g. `user/vision-trm-tiny`."})
    model_dir: str | None = field(
        default=None, metadata={"help": "Folder written by save_pretrained (model + processor). Needed unless --space."}
    )
    eval_results_file: str | None = field(
        default=None,
        metadata={"help": "JSON of evaluation results for the card (default: <model_dir>/eval_results.json if any)."},
    )
    training_args_file: str | None = field(
        default=None,
        metadata={
            "help": "JSON summary of the training arguments (default: <model_dir>/training_summary.json if any)."
        },
    )
    eval_command: str | None = field(default=None, metadata={"help": "The command that produced the evaluation."})
    private: bool = field(default=False, metadata={"help": "Create the repository as private."})
    commit_message: str | None = field(default=None, metadata={"help": "Commit message of the upload."})
    dry_run: bool = field(default=False, metadata={"help": "Write the upload folder to --dry_run_dir; upload nothing."})
    dry_run_dir: str = field(default="outputs/hub_dry_run", metadata={"help": "Where --dry_run writes the files."})
    space: bool = field(default=False, metadata={"help": "Push spaces_app/ as a Gradio Space to --repo_id."})
    space_model_id: str | None = field(
        default=None, metadata={"help": "With --space: the model the Space loads (set as its MODEL_ID variable)."}
    )
    include_demo_checkpoint: bool = field(
        default=True, metadata={"help": "With --space: upload spaces_app/demo_checkpoint/ too (the offline fallback)."}
    )


def _ignored(relative: Path, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in relative.parts for pattern in patterns)


def copy_tree(source: Path, target: Path, ignore_patterns: list[str]) -> list[str]:
    """Copies `source` into `target` (skipping ignored names); returns the copied relative paths."""
    copied = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_dir() or path.is_symlink() or _ignored(relative, ignore_patterns):
            continue
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
        copied.append(relative.as_posix())
    return copied


def _read_json(path: str | Path | None) -> dict | None:
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None


def stage_model_folder(args: PushArguments, staging: Path) -> list[str]:
    """Everything the model repository gets: weights, configs, processor, flat code files, README.md card."""
    if not args.model_dir:
        raise ValueError("--model_dir is required (or pass --space to push the Space)")
    model_dir = Path(args.model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} has no config.json; point --model_dir at a save_pretrained folder")
    copy_tree(model_dir, staging, MODEL_IGNORE_PATTERNS)
    missing_code = [name for name in REQUIRED_MODEL_FILES if not (staging / name).is_file()]
    if missing_code:  # an older save without the flat code files: write them from the installed package
        from vision_trm.modeling_trm.hub_export import write_code_files

        logger.info("model_dir lacks %s; writing the flat code files", missing_code)
        write_code_files(staging)
    processor_config = staging / "processor_config.json"
    if processor_config.is_file() and (staging / "processing_trm.py").is_file():
        if "auto_map" not in json.loads(processor_config.read_text(encoding="utf-8")):
            # Without it AutoProcessor(..., trust_remote_code=True) returns the bare tokenizer.
            from vision_trm.modeling_trm.hub_export import PROCESSOR_AUTO_MAP, add_auto_map

            add_auto_map(processor_config, PROCESSOR_AUTO_MAP)
    eval_file = args.eval_results_file or (
        model_dir / "eval_results.json" if (model_dir / "eval_results.json").is_file() else None
    )
    train_file = args.training_args_file or (
        model_dir / "training_summary.json" if (model_dir / "training_summary.json").is_file() else None
    )
    eval_results = _read_json(eval_file)
    training_summary = _read_json(train_file)
    if training_summary is None and isinstance(eval_results, dict) and isinstance(eval_results.get("train"), dict):
        # run_multimodal.py keeps the preset, phase and Trainer's train metrics beside the evaluation.
        training_summary = {key: eval_results[key] for key in ("preset", "phase") if key in eval_results}
        for stage, metrics in eval_results["train"].items():
            for key, value in (metrics or {}).items():
                training_summary[f"{stage}/{key}" if len(eval_results["train"]) > 1 else key] = value
    write_model_card(
        staging,
        eval_results=eval_results,
        training_args_summary=training_summary,
        repo_id=args.repo_id,
        eval_command=args.eval_command,
    )
    return sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())


def stage_space_folder(args: PushArguments, staging: Path) -> list[str]:
    """The Space: app.py, requirements.txt, README.md (YAML header), examples and, by default, the demo checkpoint."""
    patterns = list(SPACE_IGNORE_PATTERNS)
    if not args.include_demo_checkpoint:
        patterns.append("demo_checkpoint")
    copy_tree(SPACES_APP_DIR, staging, patterns)
    readme = staging / "README.md"
    if args.space_model_id and readme.is_file():  # link the Space to its model on the Hub page
        text = readme.read_text(encoding="utf-8")
        header, _, body = text.partition("\n---\n")
        if "\nmodels:" not in header:
            header += f"\nmodels:\n- {args.space_model_id}"
        readme.write_text(header + "\n---\n" + body, encoding="utf-8")
    return sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())


def push(args: PushArguments, api=None) -> dict:
    """Stages the folder, then writes it to --dry_run_dir or uploads it with `api` (an `HfApi`, injectable)."""
    repo_type = "space" if args.space else "model"
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "upload"
        staging.mkdir()
        files = stage_space_folder(args, staging) if args.space else stage_model_folder(args, staging)
        summary = {"repo_id": args.repo_id, "repo_type": repo_type, "files": files}
        if args.dry_run:
            target = Path(args.dry_run_dir)
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(staging, target)
            summary["dry_run_dir"] = str(target)
            if args.space and args.space_model_id:
                summary["space_variables"] = {"MODEL_ID": args.space_model_id}
            logger.info("dry run: %d files written to %s (nothing uploaded)", len(files), target)
            return summary
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi()
        create_kwargs = {"repo_id": args.repo_id, "repo_type": repo_type, "private": args.private, "exist_ok": True}
        if args.space:
            create_kwargs["space_sdk"] = "gradio"
        repo_url = api.create_repo(**create_kwargs)
        commit = api.upload_folder(
            repo_id=args.repo_id,
            repo_type=repo_type,
            folder_path=str(staging),
            commit_message=args.commit_message or f"Upload vision-trm {repo_type}",
        )
        if args.space and args.space_model_id:
            api.add_space_variable(args.repo_id, "MODEL_ID", args.space_model_id)
            summary["space_variables"] = {"MODEL_ID": args.space_model_id}
        summary.update(repo_url=str(repo_url), commit=str(getattr(commit, "commit_url", commit)))
        logger.info("uploaded %d files to %s (%s)", len(files), args.repo_id, repo_type)
        return summary


def main(argv: list[str] | None = None, api=None) -> dict:
    from transformers import HfArgumentParser

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    (args,) = HfArgumentParser(PushArguments).parse_args_into_dataclasses(args=argv)
    summary = push(args, api=api)
    print(json.dumps({k: v for k, v in summary.items() if k != "files"}, indent=2))
    print("\n".join(f"  {name}" for name in summary["files"]))
    return summary


if __name__ == "__main__":
    main()
