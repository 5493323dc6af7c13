"""Real filesystem conditions for failure tests: a small disk (tmpfs) and a read-only directory.

Mounting needs root. Where it is not permitted the test is skipped with the reason, except
under CI=true: CI runs as root, and a skip there would hide that these tests never ran.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator

import pytest


def mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"mount {' '.join(args)} failed under CI: {proc.stderr.strip()}")
        pytest.skip(f"mounting is not permitted here: {proc.stderr.strip()}")


@contextlib.contextmanager
def small_disk(path, size: str) -> Iterator:
    """`path` (created) as a filesystem of `size` (e.g. "3m"), unmounted afterwards."""
    os.makedirs(path, exist_ok=True)
    mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@contextlib.contextmanager
def read_only(path) -> Iterator:
    """`path` (created) made unwritable: a read-only bind mount as root (root ignores
    permissions), a directory without write permission otherwise."""
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0:
        os.chmod(path, 0o555)
        try:
            yield path
        finally:
            os.chmod(path, 0o755)
        return
    mount("--bind", str(path), str(path))
    try:
        mount("-o", "remount,bind,ro", str(path))
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def read_only_kind() -> str:
    """What a write to a `read_only` directory fails with, as the CLIs say it."""
    return "read-only file system" if os.geteuid() == 0 else "permission denied"
