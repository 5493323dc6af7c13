"""Setuptools shim so Beam's `--setup_file ./setup.py` can stage this project to workers.

All metadata lives in pyproject.toml. Beam 2.77 builds the staged sdist with
`python -m build --no-isolation --sdist` and, where the `build` module is missing (as in
this project's virtualenv), falls back to `python setup.py sdist` -- which needs this
file. Both run offline: no isolated build environment is downloaded.
"""

from setuptools import setup

setup()
