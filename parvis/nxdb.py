"""Runs nx-27017 (MongoDB wire protocol over SQLite) with its per-command INFO logging turned down.

nx-27017 logs every command at INFO; at our write rates that floods the terminal and costs time.
Arguments are nx-27017's own (`--data-dir DIR --host H -p PORT`).
"""
import logging
import sys

from nx_27017 import nx_27017

_basic_config = logging.basicConfig


def _quiet_basic_config(**kwargs):
    kwargs["level"] = logging.WARNING
    _basic_config(**kwargs)


if __name__ == "__main__":
    logging.basicConfig = _quiet_basic_config
    sys.exit(nx_27017.main())
