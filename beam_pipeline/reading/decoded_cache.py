"""A local cache of decoded values: the write pass reads back what the analyze pass inflated.

Both passes read every training file. Inflating a .npz member costs ~2.1 CPU s per GB of
values (libdeflate); writing the decoded values to a local file and reading them back costs
~0.25 (page-cache copies, measured on this VM once its memory had been touched; the first
touch of fresh VM memory costs ~1.4 s per GB once). Memory stays flat: the values live in
files (the kernel's page cache, which it can drop), not in the process.

Only where every worker shares the launcher's machine (the in-process runners): on a
distributed runner the write pass of a file may run on another machine, where an entry
would be a miss. A miss only costs the inflate it would have cost anyway; each entry is
removed once the write pass has read it, and none is written when the disk is short.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import uuid

import numpy as np

from beam_pipeline.planning.plan import FileTask
from beam_pipeline.reading.layouts import FilePlan

# Free disk space left untouched by the cache.
_RESERVE_BYTES = 1 << 30


@dataclasses.dataclass(frozen=True)
class DecodedCache:
    """Decoded values of file tasks under `directory`.

    Attributes:
      directory: a local directory shared by the run's workers.
      store: whether a miss stores what it decoded (the analyze pass) or not (the write pass).
    """

    directory: str
    store: bool

    def _path(self, task: FileTask) -> str:
        key = hashlib.sha256(repr((task.path, task.sample_range)).encode()).hexdigest()
        return os.path.join(self.directory, key)

    def values(self, task: FileTask, plan: FilePlan) -> np.ndarray:
        """The values of the task's samples (plan.read_values): from the cache, whose entry
        is then removed, or decoded (and stored, if `store`)."""
        path = self._path(task)
        try:
            with open(path, "rb") as f:
                values = np.lib.format.read_array(f, allow_pickle=False)
            os.remove(path)
            return values
        except (OSError, ValueError):   # no entry (a miss), the directory is gone, a cut entry
            pass
        values = plan.read_values(task.sample_range)
        if self.store:
            self._put(path, values)
        return values

    def _put(self, path: str, values: np.ndarray) -> None:
        temp = f"{path}.tmp-{uuid.uuid4().hex}"
        try:
            if shutil.disk_usage(self.directory).free < values.nbytes + _RESERVE_BYTES:
                return
            with open(temp, "wb") as f:
                np.lib.format.write_array(f, values, allow_pickle=False)
            os.replace(temp, path)   # whole entries only: a reader never sees half of one
        except OSError:   # a full disk or a removed directory: the write pass decodes again
            if os.path.exists(temp):
                os.remove(temp)
