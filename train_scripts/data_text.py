"""Text sources: the King James Bible offline (Debian `bible-kjv`), split by book; WikiText-2 from the Hub.

Language modelling task: a *context* chunk is rendered onto the canvas by the processor and the text decoder
learns the *continuation* chunk that follows it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from datasets import load_dataset

KJV_PATH_ENV = "VISION_TRM_KJV_PATH"
KJV_RANGE = "Gen1:1-Rev22:21"

# The 66 books in canonical order, as the `bible` command abbreviates them in its verse references.
KJV_BOOKS = [
    "Ge", "Exo", "Lev", "Num", "Deu", "Josh", "Jdgs", "Ruth", "1Sm", "2Sm", "1Ki", "2Ki", "1Chr", "2Chr", "Ezra",
    "Neh", "Est", "Job", "Psa", "Prv", "Eccl", "SSol", "Isa", "Jer", "Lam", "Eze", "Dan", "Hos", "Joel", "Amos",
    "Obad", "Jonah", "Mic", "Nahum", "Hab", "Zep", "Hag", "Zec", "Mal", "Mat", "Mark", "Luke", "John", "Acts",
    "Rom", "1Cor", "2Cor", "Gal", "Eph", "Phi", "Col", "1Th", "2Th", "1Tim", "2Tim", "Titus", "Phmn", "Heb", "Jas",
    "1Pet", "2Pet", "1Jn", "2Jn", "3Jn", "Jude", "Rev",
]
# Held-out books, covering law/history, wisdom, prophecy, gospel and epistle: validation ~4 %, test ~10 % of the text.
KJV_VALIDATION_BOOKS = ["Ruth", "Eccl", "Jonah", "Mark", "Gal", "Jas"]
KJV_TEST_BOOKS = ["Josh", "Prv", "Dan", "Luke", "Eph", "1Pet"]

_VERSE = re.compile(r"^(\S+?)(\d+):(\d+)\s+(.*)$")


class TextFileError(RuntimeError):
    """A text source is missing or unreadable; the message names the file or command."""


def read_kjv_dump(path=None) -> str:
    """The `bible -f "Gen1:1-Rev22:21"` output: from `$VISION_TRM_KJV_PATH` (a text dump) or the `bible` command."""
    path = path or os.environ.get(KJV_PATH_ENV)
    if path:
        path = Path(path)
        if not path.is_file():
            raise TextFileError(f"KJV text file {path} not found (set by {KJV_PATH_ENV}); "
                                f"create it with: bible -f \"{KJV_RANGE}\" > {path}")
        try:
            if path.suffix == ".gz":
                import gzip

                with gzip.open(path, "rt", encoding="utf-8") as handle:
                    return handle.read()
            return path.read_text(encoding="utf-8")
        except (OSError, EOFError, UnicodeDecodeError) as error:
            raise TextFileError(f"KJV text file {path} is unreadable ({error})") from error
    if shutil.which("bible") is None:
        raise TextFileError("the `bible` command (/usr/bin/bible) was not found: apt-get install bible-kjv, "
                            f"or set {KJV_PATH_ENV} to a dump made with: bible -f \"{KJV_RANGE}\"")
    result = subprocess.run(["bible", "-f", KJV_RANGE], capture_output=True, text=True, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        raise TextFileError(f"`bible -f {KJV_RANGE}` failed (exit {result.returncode}): {result.stderr.strip()}; "
                            "reinstall bible-kjv (its data file is /usr/share/bible-kjv/bible.data)")
    return result.stdout


def parse_kjv(dump: str, source: str = "bible") -> dict[str, str]:
    """Book abbreviation -> the book's text (verses joined by spaces), in canonical order."""
    books: dict[str, list[str]] = {}
    last = None
    for line in dump.splitlines():
        line = line.strip()
        if not line:
            continue
        match = _VERSE.match(line)
        if match:
            last = match.group(1)
            books.setdefault(last, []).append(match.group(4).strip())
        elif last is not None:  # a wrapped verse continues on the next line
            books[last][-1] += " " + line
    missing = [b for b in KJV_BOOKS if b not in books]
    if missing:
        raise TextFileError(f"KJV text from {source} lacks books {missing[:5]}... (corrupt or truncated dump)")
    return {book: " ".join(books[book]) for book in KJV_BOOKS}


def kjv_splits(path=None) -> dict[str, dict[str, str]]:
    """{"train"|"validation"|"test": {book: text}} split by book (see KJV_VALIDATION_BOOKS / KJV_TEST_BOOKS)."""
    books = parse_kjv(read_kjv_dump(path), source=str(path or os.environ.get(KJV_PATH_ENV) or "bible"))
    held = set(KJV_VALIDATION_BOOKS) | set(KJV_TEST_BOOKS)
    return {
        "train": {b: t for b, t in books.items() if b not in held},
        "validation": {b: books[b] for b in KJV_VALIDATION_BOOKS},
        "test": {b: books[b] for b in KJV_TEST_BOOKS},
    }


def load_wikitext2(split: str = "train") -> dict[str, str]:
    """WikiText-2 (raw) through `datasets.load_dataset`; needs a reachable Hub or a local cache."""
    dataset = load_dataset("Salesforce/wikitext", "wikitext-2-raw-v1", split=split)
    return {"wikitext2": " ".join(line.strip() for line in dataset["text"] if line.strip())}


def text_rows(documents: dict[str, str], context_chars: int = 96, target_chars: int = 48, stride: int | None = None,
              source: str = "kjv"):
    """Language-modelling rows: `text` = a context chunk, `text_target` = the `target_chars` that follow it."""
    stride = stride or (context_chars + target_chars)
    for name, text in documents.items():
        for start in range(0, len(text) - context_chars - target_chars + 1, stride):
            yield {"text": text[start:start + context_chars],
                   "text_target": text[start + context_chars:start + context_chars + target_chars],
                   "source": f"{source}:{name}"}
