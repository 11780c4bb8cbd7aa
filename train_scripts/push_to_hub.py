"""Uploads a trained TRM folder (model + processor + code + generated model card) or the Gradio Space to the Hub.

Model:
    python train_scripts/push_to_hub.py --model_dir outputs/run --repo_id user/vision-trm-tiny \
        --eval_results_file outputs/run/eval_results.json
Dry run (writes exactly the files that would be uploaded into a NEW or empty folder, uploads nothing):
    python train_scripts/push_to_hub.py --model_dir outputs/run --repo_id user/vision-trm-tiny --dry_run \
        --dry_run_dir outputs/hub_dry_run
Space (the `spaces_app/` folder as a Gradio Space; `--space_model_id` sets its MODEL_ID variable):
    python train_scripts/push_to_hub.py --space --repo_id user/vision-trm-demo --space_model_id user/vision-trm-tiny

What goes up is decided once, by `model_upload_plan` / `space_upload_plan`: a mapping from the path in the
repository to a local file or to generated content (the model card). The upload is one `HfApi.create_commit` of
those files (what `upload_folder` does, plus the generated card in the same commit); the dry run copies the same
mapping into its folder. Nothing is staged by copying for the real upload, and nothing is ever deleted.

A model repository gets the top level of the saved folder (weights, config, processor, code files, plots, results)
less the Trainer's state, and, for a `run_multimodal.py --lora_backbone` run, the adapter (`lora_adapter/`).
`lora_base/` - a second full copy of the weights the adapter was trained on - never goes up: the card explains how
to rebuild it from the uploaded weights. Other sub-folders (`checkpoint-*`, `runs/`, `stage-*`) never go up.

Authentication is huggingface_hub's usual one (`hf auth login` or `HF_TOKEN`).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.utils import filter_repo_objects, validate_repo_id
from transformers import HfArgumentParser

from vision_trm.train_scripts.model_card import LORA_ADAPTER_DIR, WEIGHTS_FILE, card_for_folder

REPO_ROOT = Path(__file__).resolve().parent.parent

logger = logging.getLogger("push_to_hub")

SPACES_APP_DIR = REPO_ROOT / "spaces_app"

# Top-level files of a model folder that never go up: Trainer/optimiser/RNG state, hidden files, the old card (the
# generated one replaces it). Patterns are huggingface_hub's (`filter_repo_objects`, as in `upload_folder`).
MODEL_IGNORE_PATTERNS = [
    "optimizer.pt",
    "scheduler.pt",
    "rng_state*.pth",
    "training_args.bin",
    "trainer_state.json",
    "*.pyc",
    ".*",
    "README.md",
]
# What loading the PEFT adapter needs (PEFT's own README.md stub is replaced by the card's LoRA section).
LORA_ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors"]
SPACE_IGNORE_PATTERNS = ["*__pycache__*", "*.pyc", ".*", "*/.*", "flagged/*", "screenshots/*", "*.log"]
REQUIRED_CODE_FILES = ["configuration_trm.py", "modeling_trm.py"]


@dataclass
class PushArguments:
    repo_id: str = field(metadata={"help": "Target Hub repository, `namespace/name`, e.g. `user/vision-trm-tiny`."})
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
            "help": "JSON summary of the training arguments (default: <model_dir>/training_summary.json if any, "
            "else the `train` section of the evaluation results)."
        },
    )
    eval_command: str | None = field(default=None, metadata={"help": "The command that produced the evaluation."})
    private: bool = field(default=False, metadata={"help": "Create the repository as private."})
    commit_message: str | None = field(default=None, metadata={"help": "Commit message of the upload."})
    dry_run: bool = field(
        default=False, metadata={"help": "Write the files that would be uploaded to --dry_run_dir; upload nothing."}
    )
    dry_run_dir: str = field(
        default="outputs/hub_dry_run",
        metadata={"help": "Where --dry_run writes the files: a new or empty folder (a non-empty one is refused)."},
    )
    space: bool = field(default=False, metadata={"help": "Push spaces_app/ as a Gradio Space to --repo_id."})
    space_model_id: str | None = field(
        default=None, metadata={"help": "With --space: the model the Space loads (set as its MODEL_ID variable)."}
    )
    include_demo_checkpoint: bool = field(
        default=True, metadata={"help": "With --space: upload spaces_app/demo_checkpoint/ too (the offline fallback)."}
    )


# ------------------------------------------------------------------------------------------------------ checks


def check_repo_id(repo_id: str | None, flag: str = "--repo_id") -> None:
    """huggingface_hub's own validation, plus the `namespace/name` form that the card's loading code needs."""
    validate_repo_id(repo_id)  # raises HFValidationError (a ValueError) naming the problem
    if not repo_id or "/" not in repo_id:
        raise ValueError(
            f"{flag} {repo_id!r} must be `namespace/name` (e.g. `your-username/vision-trm`): the upload and the "
            "card's `from_pretrained` lines need the full id"
        )


def check_dry_run_dir(target: Path) -> None:
    """The dry run writes only into a new or empty folder: it never deletes or overwrites anything."""
    if target.exists() and not target.is_dir():
        raise ValueError(f"--dry_run_dir {target} is a file; pass a new folder")
    if target.is_dir() and any(target.iterdir()):
        raise ValueError(
            f"--dry_run_dir {target} is not empty; the dry run only writes into a new or empty folder and never "
            "deletes anything: pass a new folder (or empty this one yourself)"
        )


def check_weights(model_dir: Path) -> None:
    """The folder holds the safetensors weights save_pretrained writes: one file, or an index and all its shards."""
    index = model_dir / f"{WEIGHTS_FILE}.index.json"
    if (model_dir / WEIGHTS_FILE).is_file():
        return
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values()))
        missing = [name for name in shards if not (model_dir / name).is_file()]
        if shards and not missing:
            return
        raise FileNotFoundError(f"{index} names weight shards that are missing: {missing or 'none listed'}")
    raise FileNotFoundError(
        f"{model_dir} holds no weights ({WEIGHTS_FILE}): point --model_dir at a folder written by save_pretrained"
    )


def check_model_folder(model_dir: Path) -> None:
    """A save_pretrained folder that loads with `trust_remote_code`: config, weights, flat code files, auto_map."""
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{model_dir} has no config.json; point --model_dir at a save_pretrained folder")
    check_weights(model_dir)
    missing = [name for name in REQUIRED_CODE_FILES if not (model_dir / name).is_file()]
    if "auto_map" not in json.loads(config_path.read_text(encoding="utf-8")):
        missing.append("the auto_map of config.json")
    processor_config = model_dir / "processor_config.json"
    if processor_config.is_file():
        if not (model_dir / "processing_trm.py").is_file():
            missing.append("processing_trm.py")
        if "auto_map" not in json.loads(processor_config.read_text(encoding="utf-8")):
            # Without it AutoProcessor(..., trust_remote_code=True) returns the bare tokenizer.
            missing.append("the auto_map of processor_config.json")
    if missing:
        raise FileNotFoundError(
            f"{model_dir} lacks {', '.join(missing)}, which loading with trust_remote_code needs: save the model and "
            "processor again with vision-trm's save_pretrained, which writes them"
        )


# ------------------------------------------------------------------------------------------------ upload plans


def folder_files(folder: Path, ignore_patterns: list[str], recursive: bool = True) -> dict[str, Path]:
    """Files of `folder` by relative path, less `ignore_patterns` (huggingface_hub's matcher, as `upload_folder`)."""
    paths = folder.rglob("*") if recursive else folder.iterdir()
    names = sorted(path.relative_to(folder).as_posix() for path in paths if path.is_file())
    return {name: folder / name for name in filter_repo_objects(names, ignore_patterns=ignore_patterns)}


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


def _default_file(folder: Path, given: str | None, name: str) -> str | Path | None:
    return given or (folder / name if (folder / name).is_file() else None)


def model_upload_plan(args: PushArguments) -> dict[str, Path | bytes]:
    """Path in the repository -> local file or generated bytes: weights, configs, processor, code, card, adapter."""
    if not args.model_dir:
        raise ValueError("--model_dir is required (or pass --space to push the Space)")
    model_dir = Path(args.model_dir)
    check_model_folder(model_dir)
    plan: dict[str, Path | bytes] = folder_files(model_dir, MODEL_IGNORE_PATTERNS, recursive=False)
    adapter_dir = model_dir / LORA_ADAPTER_DIR
    if adapter_dir.is_dir():
        missing = [name for name in LORA_ADAPTER_FILES if not (adapter_dir / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{adapter_dir} lacks {missing}: it is not a complete PEFT adapter")
        plan.update({f"{LORA_ADAPTER_DIR}/{name}": adapter_dir / name for name in LORA_ADAPTER_FILES})
    card = card_for_folder(
        model_dir,
        eval_results=_read_json(_default_file(model_dir, args.eval_results_file, "eval_results.json")),
        training_args_summary=_read_json(_default_file(model_dir, args.training_args_file, "training_summary.json")),
        repo_id=args.repo_id,
        eval_command=args.eval_command,
    )
    plan["README.md"] = str(card).encode("utf-8")
    return dict(sorted(plan.items()))


def space_readme_linking(readme: str, model_id: str) -> str:
    """The Space README with `models: [model_id]` in its YAML header (links the Space to its model on the Hub)."""
    header, _, body = readme.partition("\n---\n")
    if "\nmodels:" not in header:
        header += f"\nmodels:\n- {model_id}"
    return header + "\n---\n" + body


def space_upload_plan(args: PushArguments) -> dict[str, Path | bytes]:
    """The Space: app.py, requirements.txt, README.md (YAML header), examples and, by default, the demo checkpoint."""
    patterns = SPACE_IGNORE_PATTERNS + ([] if args.include_demo_checkpoint else ["demo_checkpoint/*"])
    plan: dict[str, Path | bytes] = folder_files(SPACES_APP_DIR, patterns)
    if args.space_model_id and "README.md" in plan:
        readme = plan["README.md"].read_text(encoding="utf-8")
        plan["README.md"] = space_readme_linking(readme, args.space_model_id).encode("utf-8")
    return plan


# ----------------------------------------------------------------------------------------------------- writing


def write_plan(plan: dict[str, Path | bytes], target: Path) -> None:
    """Writes the plan into `target` (new or empty): files are opened exclusively, so nothing is ever overwritten."""
    check_dry_run_dir(target)
    target.mkdir(parents=True, exist_ok=True)
    for name, source in plan.items():
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        with destination.open("xb") as out:
            if isinstance(source, bytes):
                out.write(source)
            else:
                with source.open("rb") as file:
                    shutil.copyfileobj(file, out)


def commit_operations(plan: dict[str, Path | bytes]) -> list[CommitOperationAdd]:
    return [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=source if isinstance(source, bytes) else str(source))
        for name, source in plan.items()
    ]


def push(args: PushArguments, api=None) -> dict:
    """Builds the upload plan, then writes it to --dry_run_dir or commits it with `api` (an `HfApi`, injectable)."""
    check_repo_id(args.repo_id)
    if args.space and args.space_model_id:
        check_repo_id(args.space_model_id, "--space_model_id")
    if args.dry_run:
        check_dry_run_dir(Path(args.dry_run_dir))  # before the work of building the plan
    repo_type = "space" if args.space else "model"
    plan = space_upload_plan(args) if args.space else model_upload_plan(args)
    summary = {"repo_id": args.repo_id, "repo_type": repo_type, "files": list(plan)}
    if args.space and args.space_model_id:
        summary["space_variables"] = {"MODEL_ID": args.space_model_id}
    if args.dry_run:
        write_plan(plan, Path(args.dry_run_dir))
        summary["dry_run_dir"] = args.dry_run_dir
        logger.info("dry run: %d files written to %s (nothing uploaded)", len(plan), args.dry_run_dir)
        return summary
    api = api or HfApi()
    create_kwargs = {"repo_id": args.repo_id, "repo_type": repo_type, "private": args.private, "exist_ok": True}
    if args.space:
        create_kwargs["space_sdk"] = "gradio"
    repo_url = api.create_repo(**create_kwargs)
    commit = api.create_commit(
        repo_id=args.repo_id,
        repo_type=repo_type,
        operations=commit_operations(plan),
        commit_message=args.commit_message or f"Upload vision-trm {repo_type}",
    )
    if args.space and args.space_model_id:
        api.add_space_variable(args.repo_id, "MODEL_ID", args.space_model_id)
    summary.update(repo_url=str(repo_url), commit=str(getattr(commit, "commit_url", commit)))
    logger.info("uploaded %d files to %s (%s)", len(plan), args.repo_id, repo_type)
    return summary


def main(argv: list[str] | None = None, api=None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    (args,) = HfArgumentParser(PushArguments).parse_args_into_dataclasses(args=argv)
    summary = push(args, api=api)
    print(json.dumps({k: v for k, v in summary.items() if k != "files"}, indent=2))
    print("\n".join(f"  {name}" for name in summary["files"]))
    return summary


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:  # bad input: the message, not a traceback, and exit status 1
        sys.exit(f"push_to_hub: {error}")
