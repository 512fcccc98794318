"""Runs nx-27017 (MongoDB wire protocol over SQLite) with its per-command INFO logging turned down.

nx-27017 logs every command at INFO; at our write rates that floods the terminal and costs time. Its storage
layer (neosqlite) also warns, twice, each time an aggregation stage is evaluated in Python rather than in SQL
(`$group` by a computed key: the agenda's and the notification service's counts): expected, and nothing an
operator can act on, so only its errors are shown.
Arguments are nx-27017's own (`--data-dir DIR --host H -p PORT`). nx-27017 runs on uvloop when it is
installed (it is, for the gateway); uvloop's executor-shutdown thread then races the loop's close at exit
and prints a harmless "Event loop is closed" traceback, which is silenced here and only that.
"""
import logging
import sys
import threading

from nx_27017 import nx_27017

_basic_config = logging.basicConfig


def _quiet_basic_config(**kwargs):
    kwargs["level"] = logging.WARNING
    _basic_config(**kwargs)
    logging.getLogger("neosqlite").setLevel(logging.ERROR)


_thread_hook = threading.excepthook


def _quiet_exit_race(args) -> None:
    if (args.exc_type is RuntimeError and "Event loop is closed" in str(args.exc_value)
            and args.thread is not None and "_do_shutdown" in args.thread.name):
        return
    _thread_hook(args)


if __name__ == "__main__":
    logging.basicConfig = _quiet_basic_config
    threading.excepthook = _quiet_exit_race
    sys.exit(nx_27017.main())
