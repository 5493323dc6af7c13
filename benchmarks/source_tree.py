"""The source trees the benchmarks run: this checkout, and another commit exported from it.

A measured command runs from a tree (its working directory, first on PYTHONPATH); the figures
record which commit they belong to, and whether files were modified on top of it.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def subprocess_env(root: str = REPO) -> dict[str, str]:
    """The environment of the measured commands: the source tree `root` importable first, TensorFlow quiet."""
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="2")


def git(*args: str) -> str | None:
    """Runs git in this checkout: its output, or None where git fails (e.g. in a `git archive` export)."""
    proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def code_version() -> dict[str, Any]:
    """The commit measured, and the pipeline files modified on top of it (figures of a dirty
    tree belong to no commit). Both None outside a git checkout (e.g. a `git archive` export)."""
    status = git("status", "--porcelain", "--", "beam_pipeline", "transforms", "trainer", "cli_support")
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "modified": None if status is None else [line[3:] for line in status.splitlines()]}


def resolve_commit(rev: str) -> str:
    """The short commit a git revision names; exits with an error if it names none."""
    commit = git("rev-parse", "--short", "--verify", "--end-of-options", f"{rev}^{{commit}}")
    if commit is None:
        sys.exit(f"error: --compare_ref {rev}: not a commit of {REPO}")
    return commit


def export_commit(commit: str, directory: str) -> None:
    """Writes the tree of a commit into directory (`git archive`).

    The export holds the committed files only, so "ours at REV" runs REV's code whatever the
    working tree holds, and git's own state (worktrees, index) is left alone.
    """
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=REPO, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(directory, filter="data")
