"""What every entry point shares: a user's mistake (a wrong path, a full disk, a contract that does not fit, a
binding that cannot take effect, a run that must stop) is one line on stderr and exit code 2; a traceback only with
`--debug`. Ctrl-C outside the training loop (which saves and stops by itself) is one line and exit code 130."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process Ctrl-C ended
# What gin appends to the message of an error raised inside a configurable ("\n  In call to configurable 'train'
# (<function train at 0x...>)"): the user's message is the part before it.
_GIN_SUFFIX = "In call to configurable"


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that are the user's to fix (imported on use: a script's --help stays fast)."""
    from mhr_tf.training import loop
    return (ValueError, OSError, loop.NonFiniteLossError, loop.BadSampleBudgetError)


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def one_line(error: BaseException) -> str:
    """An error's message on one line, without what gin appends."""
    lines = [line.strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line and not line.startswith(_GIN_SUFFIX)]
    return " ".join(lines) or type(error).__name__


def run(main: Callable[[], object], debug: bool = False) -> int:
    """Calls `main()`; returns 0, or prints a user error in one line and returns EXIT_USER_ERROR (EXIT_INTERRUPTED
    after a Ctrl-C)."""
    try:
        main()
    except KeyboardInterrupt as interrupt:  # training's says which checkpoint it saved
        if debug:
            raise
        print(f"\n{one_line(interrupt) if str(interrupt) else 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if debug or not isinstance(error, user_errors()):
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0
