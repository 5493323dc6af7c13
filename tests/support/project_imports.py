"""Prints, one per line, the project's source files that importing every module of the given
packages loads (`python -m tests.support.project_imports beam_pipeline`): what a workflow step
runs, which its code version must cover (tests/test_workflow.py). A process of its own, so that
nothing the caller imported counts."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import sysconfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def project_files(packages: list[str]) -> list[str]:
    for name in packages:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, name + "."):
            if not module.name.endswith(".__main__"):   # importing a __main__ runs its program
                importlib.import_module(module.name)
    loaded = {os.path.realpath(m.__file__) for m in list(sys.modules.values()) if getattr(m, "__file__", None)}
    # Not ours: the tests, and the installed libraries of a virtualenv created inside the
    # checkout (CI's .venv lies under REPO).
    libraries = [sys.prefix, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    excluded = tuple(os.path.realpath(p) + os.sep for p in [os.path.join(REPO, "tests"), *libraries])
    return sorted(f for f in loaded if f.startswith(REPO + os.sep) and not f.startswith(excluded))


if __name__ == "__main__":
    print("\n".join(project_files(sys.argv[1:])))
