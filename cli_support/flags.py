"""Flags are exact: no prefix matching, and a flag a CLI does not have is an error naming the
closest one it has.

argparse by default reads any unambiguous prefix of a flag as that flag: `--model x` became
`--model_dir x` on a trainer without a --model flag, and the model went where the user never
looked. Every CLI builds its parser with `StrictParser` (subcommands inherit it).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
from collections.abc import Iterable, Iterator, Sequence


def unknown_flags_message(args: Sequence[str], known: Iterable[str]) -> str | None:
    """What to say about the flags in `args` (argparse's leftovers) that are not in `known`:
    each with the closest known flag, if one is close. None when no leftover is a flag."""
    known = sorted(set(known))
    parts = []
    for flag in (a.split("=", 1)[0] for a in args if a.startswith("-")):
        close = difflib.get_close_matches(flag, known, n=1)
        parts.append(f"{flag} (did you mean {close[0]}?)" if close else flag)
    if not parts:
        return None
    return f"unknown flag{'s' if len(parts) > 1 else ''}: {', '.join(parts)}; see --help"


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every flag `parser` defines."""
    return [s for action in parser._actions for s in action.option_strings]


class StrictParser(argparse.ArgumentParser):
    """An ArgumentParser that takes flags only as they are spelt and names the closest flag
    for one it does not have (exit 2, like any other argparse error)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):
        # An unknown flag is named first, even when a required flag is missing too: with
        # `--model_d m` for `--model_dir m`, "--model_dir is required" would not say why.
        with nothing_required(self):
            found, extras = self.parse_known_args(args, argparse.Namespace(**vars(namespace or argparse.Namespace())))
        if extras:
            chosen = _chosen_subcommand(self, found)
            chosen.error(unknown_flags_message(extras, option_strings(chosen))
                         or f"unrecognized arguments: {' '.join(extras)}")
        return super().parse_args(args, namespace)


@contextlib.contextmanager
def nothing_required(parser: argparse.ArgumentParser) -> Iterator[None]:
    """Every flag of `parser` and its subcommands optional for a moment."""
    actions = [a for p in _parsers(parser) for a in p._actions if a.required]
    for action in actions:
        action.required = False
    try:
        yield
    finally:
        for action in actions:
            action.required = True


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """`parser` and its subcommands' parsers."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found += [p for sub in action.choices.values() for p in _parsers(sub)]
    return found


def _chosen_subcommand(parser: argparse.ArgumentParser, namespace: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser whose flags the command line used: its flags are the candidates."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(namespace, action.dest, None)
            if name in action.choices:
                return _chosen_subcommand(action.choices[name], namespace)
    return parser
