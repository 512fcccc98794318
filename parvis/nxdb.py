"""Runs nx-27017 (MongoDB wire protocol over SQLite) with its per-command INFO logging turned down; with
PARVIS_NX_INLINE=1, its commands run on its event loop's thread rather than handed to a worker thread each
(_inline_commands).

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


class _InlineAsyncio:
    """The asyncio module as nx-27017's server sees it, but `to_thread` runs the call on the event loop's own thread."""

    def __getattr__(self, name):
        import asyncio

        return getattr(asyncio, name)

    @staticmethod
    async def to_thread(func, /, *args, **kwargs):
        return func(*args, **kwargs)


def _inline_commands() -> None:
    """nx-27017 hands each command to a worker thread (asyncio.to_thread) and waits for it: with the GIL, the handler
    runs no faster there, and each command pays the hand-over both ways. Here the handler runs on the event loop's
    thread: commands one at a time, as the per-database locks already made them within one database. Measured with
    bench/consultation.py and bench/payments.py, alternately in the same hour: nx-27017's CPU 0.51 -> 0.44-0.48 ms a
    ballot, 2.93 -> 2.56 ms a payment notification, 0.31 -> 0.21-0.23 ms a plain insert. Not the default: a long
    command (a scan) would hold back every other database's commands while it runs, and the benches' bare paths,
    which are mostly database, gain more from it than the platform's (links: 765 -> 957/s bare, 386/s end to end
    either way), so their ratios would say less about the platform. PARVIS_NX_INLINE=1 turns it on."""
    from nx_27017 import server

    server.asyncio = _InlineAsyncio()


if __name__ == "__main__":
    import os

    if os.environ.get("PARVIS_NX_INLINE") == "1":
        _inline_commands()
    logging.basicConfig = _quiet_basic_config
    threading.excepthook = _quiet_exit_race
    sys.exit(nx_27017.main())
