"""The repository's scripts that are not part of the installed package (benchmarks, the Space), loaded from their
files so that tests can call their functions."""

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_file_module(name: str, path: Path):
    """The module in `path`, registered as `sys.modules[name]` (dataclasses and pickling look a module up there)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
