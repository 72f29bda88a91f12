"""``python -m forklog ...``: the forklog command-line tool (same commands, output and exit statuses as
the ``forklog`` binary)."""

import signal
import sys


def main() -> None:
    """Runs the command line in ``sys.argv`` and exits with the tool's status."""
    # Ctrl-C stops the command at once, as it does the binary (Python's handler would wait for it).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from . import _main_args

    sys.exit(_main_args())


if __name__ == "__main__":
    main()
