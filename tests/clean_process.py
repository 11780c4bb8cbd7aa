"""Runs a script in a child Python that cannot import this repository's code: the way a user who only has a
saved Hub folder (and transformers) loads it with `trust_remote_code`.

The child keeps its environment's site-packages even when they live inside the repository (a `.venv/` there, or a
venv at `/work/main-venv` beside `/work/main`): paths are compared by components, and only the repository root and
its code folders leave `sys.path`. An editable install imports `vision_trm` through its own meta-path finder
whatever `sys.path` holds, so a finder placed first refuses `vision_trm`, and the child checks before running the
script that neither `vision_trm` nor the repository's top-level code folders can be imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# Printed by the child once the checks pass: a test that does not see it did not run in a clean process.
CLEAN_MARKER = "CLEAN_PROCESS_CANNOT_IMPORT_THE_REPOSITORY"

# Runs in the child before the script; argv[1] = the repository root.
CLEAN_LOADER = textwrap.dedent(
    """
    import importlib.abc, importlib.util, os, sys
    from pathlib import Path

    REPO = Path(sys.argv[1]).resolve()
    # Top-level folders holding Python code; a hidden `.venv/` (and any site-packages below it) is not one.
    CODE_FOLDERS = [d for d in REPO.iterdir() if d.is_dir() and not d.name.startswith(".") and any(d.glob("*.py"))]

    def resolved(entry):
        return Path(entry or os.getcwd()).resolve()  # "" on sys.path is the working directory

    def is_repo_code(location):
        path = resolved(location)
        return path == REPO or any(path == folder or folder in path.parents for folder in CODE_FOLDERS)

    sys.path[:] = [p for p in sys.path if resolved(p) not in (REPO, *CODE_FOLDERS)]

    class BlockPackage(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "vision_trm" or name.startswith("vision_trm."):
                raise ImportError("the clean process must not import vision_trm")
            return None

    sys.meta_path.insert(0, BlockPackage())
    assert not any(m == "vision_trm" or m.startswith("vision_trm.") for m in sys.modules), "vision_trm preloaded"
    try:
        import vision_trm
    except ImportError:
        pass
    else:
        raise SystemExit(f"the clean process can import vision_trm from {list(vision_trm.__path__)}")

    def locations_of(spec):
        if spec is None:
            return []
        return [spec.origin] if spec.origin else list(spec.submodule_search_locations or [])

    for folder in CODE_FOLDERS:
        locations = locations_of(importlib.util.find_spec(folder.name))
        if any(is_repo_code(location) for location in locations):
            raise SystemExit(f"the clean process can import the repository's {folder.name!r} from {locations}")
    print("@CLEAN_MARKER@")
    """
).replace("@CLEAN_MARKER@", CLEAN_MARKER)


def run_clean(script: str, folder: Path, tmp_path: Path, repo: Path = REPO_ROOT,
              timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs `script` (sys.argv[2] = `folder`) in a clean child, offline, with its own Hub caches under `tmp_path`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HOME=str(tmp_path / "hf_home"))
    code = CLEAN_LOADER + textwrap.dedent(script)
    return subprocess.run(
        [sys.executable, "-c", code, str(repo), str(folder)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
