"""Runs a small coroutine in a fresh event loop per call; keeps nothing."""
import asyncio


async def _handle(n):
    await asyncio.sleep(0)
    return {"n": n, "ok": True}


def step():
    asyncio.run(_handle(1))
