"""parvis/nxdb.py runs nx-27017's command handlers on its event loop's thread instead of a worker thread each."""
from __future__ import annotations

import asyncio
import threading

from nx_27017 import server

from parvis import nxdb


def test_commands_run_on_the_event_loops_thread_and_the_rest_of_asyncio_is_untouched(monkeypatch):
    monkeypatch.setattr(server, "asyncio", server.asyncio)  # put back after the test
    nxdb._inline_commands()
    assert server.asyncio.StreamReader is asyncio.StreamReader and server.asyncio.sleep is asyncio.sleep

    async def main():
        loop_thread = threading.get_ident()
        ran_on = await server.asyncio.to_thread(lambda x, y=0: (threading.get_ident(), x + y), 1, y=2)
        return loop_thread, ran_on

    loop_thread, (ran_on, total) = asyncio.run(main())
    assert ran_on == loop_thread and total == 3
    assert asyncio.to_thread is not server.asyncio.to_thread, "asyncio itself is not changed for anyone else"
