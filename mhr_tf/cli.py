"""What every entry point shares: a user's mistake (a wrong path, a full disk, a contract that does not fit, a
binding that cannot take effect, a run that must stop) is one line on stderr and exit code 2; a traceback only with
`--debug`."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

EXIT_USER_ERROR = 2


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that are the user's to fix (imported on use: a script's --help stays fast)."""
    from mhr_tf.training import loop
    return (ValueError, OSError, loop.NonFiniteLossError, loop.BadSampleBudgetError)


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def run(main: Callable[[], object], debug: bool = False) -> int:
    """Calls `main()`; returns 0, or prints a user error in one line and returns EXIT_USER_ERROR."""
    try:
        main()
    except Exception as error:
        if debug or not isinstance(error, user_errors()):
            raise
        message = str(error).strip() or type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0
