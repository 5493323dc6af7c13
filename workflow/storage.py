"""Small file operations on local paths and on any Beam filesystem (gs://, s3://), for the steps.

Local paths use the OS (rename and os.replace are atomic); other paths go through Beam's
FileSystems, which the project's image already has for the pipeline, so the steps need no
cloud SDK of their own. Bytes are copied as they are: FileSystems would otherwise decompress a
`.gz` file on read, guessing from its name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

from cli_support import paths


def join(base: str, *parts: str) -> str:
    if paths.is_remote(base):
        from apache_beam.io.filesystems import FileSystems

        return FileSystems.join(base, *parts)
    return os.path.join(base, *parts)


def read_json(path: str) -> Any:
    """The JSON document at path, or None when there is no such file."""
    if not paths.is_remote(path):
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return json.loads(f.read().decode("utf-8"))


def write_json(path: str, document: Any) -> None:
    """Writes a JSON document so that a reader sees the old one or the new one, never a part.

    Locally: a temporary file in the same directory, then os.replace. On GCS (and S3) an object
    becomes visible only once its upload completes, so a plain write has the same property.
    """
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if paths.is_remote(path):
        from apache_beam.io.filesystem import CompressionTypes
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.write(text.encode("utf-8"))
        return
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)   # mkstemp makes it private; a server reading it runs as another user
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def copy_tree(src: str, dst: str) -> int:
    """Copies every file under src to the same relative path under dst; returns the file count.

    Raises:
      FileNotFoundError: src holds no file.
    """
    if not paths.is_remote(src) and not paths.is_remote(dst):
        if not os.path.isdir(src):
            raise FileNotFoundError(f"no directory {src}")
        shutil.copytree(src, dst)
        return sum(len(files) for _, _, files in os.walk(dst))
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    plain = CompressionTypes.UNCOMPRESSED
    src = src.rstrip("/")
    files = FileSystems.match([FileSystems.join(src, "**")])[0].metadata_list
    if not files:
        raise FileNotFoundError(f"no file under {src}")
    for meta in files:
        target = FileSystems.join(dst, meta.path[len(src) + 1:])
        with FileSystems.open(meta.path, compression_type=plain) as r, \
                FileSystems.create(target, compression_type=plain) as w:
            shutil.copyfileobj(r, w, 8 << 20)
    return len(files)


def copy_file(src: str, dst: str) -> None:
    """Copies one file (local or remote, either side)."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    if not paths.is_remote(dst):
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    plain = CompressionTypes.UNCOMPRESSED
    with FileSystems.open(src, compression_type=plain) as r, FileSystems.create(dst, compression_type=plain) as w:
        shutil.copyfileobj(r, w, 8 << 20)
