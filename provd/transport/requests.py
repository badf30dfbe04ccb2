"""Match responses to requests by ``src``, over one AppWebsocket connection.

The reader loop of a connection owns ``receive()``; a task that sends a request waits on
its own small channel here, and the reader hands each response over with
:meth:`RequestTracker.deliver`. Multi-part results (``last``) arrive on the same channel.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from ..protocol.messages import Message


class RequestTracker:
    def __init__(self, prefix: str = "provd") -> None:
        self._prefix = prefix
        self._ids = itertools.count(1)
        self._pending: dict[str, trio.MemorySendChannel[Message]] = {}

    def new_src(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    @asynccontextmanager
    async def expect(
        self, msg: Message
    ) -> AsyncIterator[tuple[Message, trio.MemoryReceiveChannel[Message]]]:
        """Tag ``msg`` with a fresh ``src`` and open a channel for the answers to it."""
        src = self.new_src()
        send, receive = trio.open_memory_channel[Message](16)
        self._pending[src] = send
        try:
            yield attrs.evolve(msg, src=src), receive
        finally:
            del self._pending[src]
            send.close()

    def deliver(self, msg: Message) -> bool:
        """Hand ``msg`` to the request it answers. False if nobody waits for it."""
        if msg.src is None:
            return False
        send = self._pending.get(msg.src)
        if send is None:
            return False
        try:
            send.send_nowait(msg)
        except trio.WouldBlock:
            return False
        return True

    def fail_all(self) -> None:
        """Connection lost: wake every waiter (their channels end)."""
        for send in self._pending.values():
            send.close()
