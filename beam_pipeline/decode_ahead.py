"""Decoding ahead, on a local run: compressed inputs inflated on the core that start-up leaves idle.

A local run spends its first ~8 s on one core, importing TensorFlow and building the job,
and then both passes inflate every .npz / .npy.gz (~3.5 s per GB each). Instead, the
launcher starts a small process (NumPy and ISA-L, ready in a fraction of a second) that
inflates inputs into a local cache while the rest starts up; both passes then read the
decoded arrays of those files from there. The process stops when the analyze pass starts:
from then on both cores are busy, and writing and reading the cache back costs this VM
about as much system time as inflating again (measured at 4 GB: 91 s with the process
running to the end, 59 s without it). Whoever needs a file first, that process or a
pass, claims it and decodes it; the others wait for it or find it done.

Only where the cache is on the workers' own disk: the in-process runner's workers are
threads of the launcher. Files that are not compressed are not cached (nothing to save),
and a file that cannot be decoded is left to the passes, which report it as they would
without the cache. `python -m beam_pipeline.decode_ahead CACHE_DIR LIMIT PATH...` is the
process the launcher starts (LIMIT: --max_file_bytes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from beam_pipeline import npy_io

# How long a reader waits for a file another party claimed before decoding it itself.
_WAIT_SECONDS = 600
_POLL_SECONDS = 0.005
# Free space the cache leaves on its disk.
_SPARE_BYTES = 1 << 30


@dataclasses.dataclass(frozen=True)
class Decoded:
    """A compressed input, decoded: its arrays' .npy bytes, and facts about the file itself."""

    members: dict[str, bytes]
    sha256: str
    size: int


class DecodeCache:
    """A directory of decoded inputs shared by the decoder process and the passes."""

    def __init__(self, directory: str):
        self._dir = directory

    def _paths(self, path: str) -> tuple[str, str, str]:
        key = hashlib.sha1(path.encode()).hexdigest()
        return tuple(os.path.join(self._dir, key + suffix) for suffix in (".claim", ".data", ".json"))

    def get(self, path: str, limit: int) -> Decoded | None:
        """The decoded arrays of a local compressed input (decoding it now unless someone has
        claimed it); None when the file is not compressed, cannot be decoded, or is remote."""
        if "://" in path:
            return None
        claim, data_path, index_path = self._paths(path)
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return self._wait(claim, data_path, index_path)
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return self._decode(path, limit, data_path, index_path)

    def _decode(self, path: str, limit: int, data_path: str, index_path: str) -> Decoded | None:
        index: dict = {"members": None}
        decoded = None
        try:
            with open(path, "rb") as f:
                content = f.read(len(npy_io.NPY_MAGIC))
                if content != npy_io.NPY_MAGIC:   # a plain .npy is read as it is
                    content += f.read()
            members = npy_io.ArrayFile(content).decompressed(limit) if content != npy_io.NPY_MAGIC else None
            if members is not None and shutil.disk_usage(self._dir).free > sum(map(len, members.values())) + \
                    _SPARE_BYTES:
                decoded = Decoded(members, hashlib.sha256(content).hexdigest(), len(content))
                _write_atomically(data_path, b"".join(members.values()))
                index = {"members": [[name, len(data)] for name, data in members.items()],
                         "sha256": decoded.sha256, "size": decoded.size}
        except Exception:  # noqa: BLE001 - the passes read the file themselves and report why it is bad
            decoded = None
        _write_atomically(index_path, json.dumps(index).encode())
        return decoded

    def _wait(self, claim: str, data_path: str, index_path: str) -> Decoded | None:
        deadline = time.monotonic() + _WAIT_SECONDS
        while not os.path.exists(index_path):
            if time.monotonic() > deadline or not _claimant_alive(claim):
                return None
            time.sleep(_POLL_SECONDS)
        with open(index_path) as f:
            index = json.load(f)
        if index["members"] is None:
            return None
        with open(data_path, "rb") as f:
            data = f.read()
        members, offset = {}, 0
        for name, length in index["members"]:
            members[name] = data[offset:offset + length]
            offset += length
        return Decoded(members, index["sha256"], index["size"])


def _claimant_alive(claim: str) -> bool:
    try:
        with open(claim) as f:
            pid = int(f.read() or 0)
        if pid:
            os.kill(pid, 0)
        return True   # a claim without a pid yet is being written right now
    except (ProcessLookupError, ValueError):
        return False
    except (PermissionError, FileNotFoundError):
        return True


def _write_atomically(path: str, data: bytes) -> None:
    temp = f"{path}.tmp-{os.getpid()}"
    with open(temp, "wb") as f:
        f.write(data)
    os.replace(temp, path)


class Decoder:
    """The decoder process and its cache directory (None: nothing is decoded ahead)."""

    def __init__(self, paths: list[str], limit: int):
        local = [p for p in paths if "://" not in p]
        self.cache_dir = tempfile.mkdtemp(prefix="npy-tft-decoded-") if local else None
        self._process = subprocess.Popen([sys.executable, "-m", __name__, self.cache_dir, str(limit), *local],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL) if local else None

    def stop(self) -> None:
        """Stops decoding (what is decoded stays usable; a file it was decoding is read as usual)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()   # reaped: a reader waiting on its claim sees it gone


@contextlib.contextmanager
def decoding_ahead(paths: list[str], limit: int) -> Iterator[Decoder]:
    """Starts the decoder process on the local paths among `paths`; stops it and removes its
    cache on exit."""
    decoder = Decoder(paths, limit)
    try:
        yield decoder
    finally:
        decoder.stop()
        if decoder.cache_dir:
            shutil.rmtree(decoder.cache_dir, ignore_errors=True)


def main(argv: list[str]) -> None:
    """Decodes the given inputs into the cache, in order; exits early if the launcher dies."""
    cache_dir, limit, paths = argv[0], int(argv[1]), argv[2:]
    cache, parent = DecodeCache(cache_dir), os.getppid()
    for path in paths:
        if os.getppid() != parent or not os.path.isdir(cache_dir):
            return
        cache.get(path, limit)


if __name__ == "__main__":
    main(sys.argv[1:])
