"""Content fingerprints: the part of a step's cache key that kfp cannot see by itself.

kfp keys a cached step on its component, image, command and input values. The preprocess step's
inputs are globs, and the same glob names new bytes when a file is rewritten; both steps run
code (`beam_pipeline`, `trainer`, `transforms`) that kfp never looks at. So the `fingerprint`
step, which is never cached, turns the files' content and the code's sources into short
strings that the cached steps take as input values: when either changes, so does the key.

Reading every byte of a large dataset before each run would cost as much as a pass of the job:
- local files: sha256 of the bytes, remembered in a stat cache with their size and mtime (ns);
  a file whose size and mtime are unchanged is not read again (the rule git and make use).
- other filesystems (gs://, s3://): the checksum the store keeps for each object (crc32c on
  GCS, the ETag on S3), read from its metadata through Beam's FileSystems; no bytes are read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
from collections.abc import Mapping, Sequence

from cli_support import paths
from workflow import storage

_CHUNK = 8 << 20


@dataclasses.dataclass(frozen=True)
class DataFingerprint:
    """A fingerprint of the input files and what it cost."""

    key: str
    files: int
    hashed: int   # local files whose bytes were read this time
    reused: int   # local files whose sha256 came from the stat cache
    remote: int   # files whose checksum came from their store's metadata


def match(patterns: Sequence[str]) -> list[str]:
    """Every file the patterns match, through Beam's FileSystems (as the pipeline matches them).

    Raises:
      ValueError: a pattern matches nothing.
    """
    from apache_beam.io.filesystems import FileSystems

    found = []
    for pattern, result in zip(patterns, FileSystems.match(list(patterns))):
        if not result.metadata_list:
            raise ValueError(f"no file matches {pattern}")
        found += [m.path for m in result.metadata_list]
    return sorted(set(found))


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _local_digest(path: str, cache: dict[str, dict]) -> tuple[str, bool]:
    """(sha256 of the file, whether it was read now); reuses the cache while size and mtime hold."""
    st = os.stat(path)
    entry = cache.get(path)
    if entry and entry["size"] == st.st_size and entry["mtime_ns"] == st.st_mtime_ns:
        return entry["sha256"], False
    digest = sha256_file(path)
    cache[path] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    return digest, True


def data_fingerprint(splits: Mapping[str, Sequence[str]], stat_cache: str = "") -> DataFingerprint:
    """Fingerprints the files each split's patterns match: their paths and their content.

    Args:
      splits: patterns per split (e.g. {"train": [...], "eval": [...]}).
      stat_cache: a local JSON file remembering local files' sha256 by size and mtime; "" for none.
    """
    from apache_beam.io.filesystems import FileSystems

    cache = (storage.read_json(stat_cache) or {}) if stat_cache else {}
    rows, hashed, reused, remote = [], 0, 0, 0
    for split in sorted(splits):
        for path in match(splits[split]):
            if paths.is_remote(path):
                digest, remote = f"checksum:{FileSystems.checksum(path)}", remote + 1
            else:
                sha, read = _local_digest(path, cache)
                digest, hashed, reused = f"sha256:{sha}", hashed + read, reused + (not read)
            rows.append([split, path, digest])
    if stat_cache and hashed:
        storage.write_json(stat_cache, cache)   # atomic: a killed run leaves the old cache, never half of one
    key = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
    return DataFingerprint(key=key, files=len(rows), hashed=hashed, reused=reused, remote=remote)


def source_files(module: str) -> list[tuple[str, str]]:
    """(path, name relative to the module) of a module's or a package's .py files, sorted."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ValueError(f"cannot find the sources of {module}")
    if not spec.submodule_search_locations:
        return [(spec.origin, os.path.basename(spec.origin))]
    root = spec.submodule_search_locations[0]
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        files += [(os.path.join(folder, n), os.path.relpath(os.path.join(folder, n), root))
                  for n in names if n.endswith(".py")]
    return sorted(files, key=lambda f: f[1])


def code_version(modules: Sequence[str]) -> str:
    """A hash of the sources a step runs (packages or single modules), wherever they are installed.

    Computed from the files rather than a git commit, so it also works from an installed wheel or
    a container image, and a change to the docs or to another step's code does not count.
    """
    h = hashlib.sha256()
    for module in modules:
        for path, name in source_files(module):
            with open(path, "rb") as f:
                h.update(f"{module}/{name}\0".encode() + f.read() + b"\0")
    return h.hexdigest()
