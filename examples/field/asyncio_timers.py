"""A long-lived event loop where each request schedules a timeout an hour
away and never cancels it: the loop's timer heap grows."""
import asyncio

loop = asyncio.new_event_loop()


def _expire(payload):
    payload.clear()


def step():
    loop.call_later(3600, _expire, {"payload": "y" * 100})
