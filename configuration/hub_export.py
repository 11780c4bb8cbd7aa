"""Writes the code files a Hub folder needs for `trust_remote_code`.

Remote code only loads flat folders whose files import each other as siblings (`from .x import y`). In this
repository the code lives in three folders (`configuration/`, `processing/`, `modeling_trm/`) that import each
other as `from ..<folder>.<module> import y`. This module copies every module of the three folders flat into a
save directory and rewrites those imports to `from .<module> import y`. Loaded from such a flat folder, it copies
its own siblings as they are, so a remote-code model saves again unchanged.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

CODE_FOLDERS = ("configuration", "processing", "modeling_trm")
MODEL_AUTO_MAP = {
    "AutoConfig": "configuration_trm.TRMConfig",
    "AutoModel": "modeling_trm.TRMModel",
    "AutoModelForPreTraining": "modeling_trm.TRMForMultitaskReasoning",
    "AutoModelForImageClassification": "modeling_trm.TRMForImageClassification",
    "AutoProcessor": "processing_trm.TRMProcessor",
}
PROCESSOR_AUTO_MAP = {
    "AutoProcessor": "processing_trm.TRMProcessor",
    "AutoImageProcessor": "image_processing_trm.TRMImageProcessor",
}
_CROSS_FOLDER_IMPORT = re.compile(r"^(\s*)from \.\.(?:" + "|".join(CODE_FOLDERS) + r")\.(\w+) import", re.MULTILINE)


def source_files() -> list[Path]:
    """The package's modules: the three folders in a repository or install, else this flat folder's siblings."""
    here = Path(__file__).resolve().parent
    root = here.parent
    if all((root / folder).is_dir() for folder in CODE_FOLDERS):
        files = [path for folder in CODE_FOLDERS for path in sorted((root / folder).glob("*.py"))]
    else:
        files = sorted(here.glob("*.py"))
    files = [path for path in files if path.name != "__init__.py"]
    names = [path.name for path in files]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RuntimeError(f"module names must be unique across {CODE_FOLDERS} to be flattened: {duplicates}")
    return files


def flatten_imports(source: str, filename: str) -> str:
    """Rewrites `from ..<folder>.<module> import` to the sibling form; refuses any other parent import."""
    flat = _CROSS_FOLDER_IMPORT.sub(r"\1from .\2 import", source)
    leftover = re.search(r"^\s*(from \.\.|import \.)", flat, re.MULTILINE)
    if leftover:
        raise RuntimeError(f"{filename}: import {leftover.group(0).strip()!r} cannot be flattened for the Hub")
    return flat


def write_code_files(save_directory) -> list[Path]:
    """Copies every module flat into `save_directory` with sibling imports; returns the written paths."""
    save_directory = Path(save_directory)
    save_directory.mkdir(parents=True, exist_ok=True)
    written = []
    for path in source_files():
        target = save_directory / path.name
        target.write_text(flatten_imports(path.read_text(encoding="utf-8"), path.name), encoding="utf-8")
        written.append(target)
    return written


def add_auto_map(json_path, auto_map: dict, nested: dict[str, dict] | None = None) -> None:
    """Adds `auto_map` entries to a saved JSON config (e.g. `processor_config.json`), and to the sections named in
    `nested` (`{"image_processor": {...}}`): transformers >= 5.25 resolves a processor's nested image processor from
    that section alone, and finds remote code only through the section's own `auto_map`."""
    json_path = Path(json_path)
    content = json.loads(json_path.read_text(encoding="utf-8"))
    content["auto_map"] = {**content.get("auto_map", {}), **auto_map}
    for section, section_map in (nested or {}).items():
        if isinstance(content.get(section), dict):
            content[section]["auto_map"] = {**content[section].get("auto_map", {}), **section_map}
    json_path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
