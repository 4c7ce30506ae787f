"""Bounded request bodies: a pure ASGI middleware, so an oversized body is refused before the
app sees it, whether or not it declares its length."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hpsearch.api.auth import BODILESS_METHODS
from hpsearch.api.errors import error_response


class BodyLimit:
    """Answer 413 to a request whose body exceeds the limit `limit_for(path)` gives.

    The body is read here, at most `limit` bytes of it, and replayed to the app: the app's own
    parsers would otherwise turn an error raised mid-body into a 400.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in BODILESS_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(limit, scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _refuse(limit, scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        chunks.clear()
        replayed = False

        async def replay() -> Message:
            nonlocal replayed, body
            if replayed:
                return await receive()
            replayed = True
            message: Message = {"type": "http.request", "body": body, "more_body": False}
            body = b""  # the app's copy is the only one: freed once the app has parsed it
            return message

        await self.app(scope, replay, send)


async def _refuse(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    message = f"request body larger than the limit of {limit} bytes"
    response = error_response(413, "too_large", message, "body")
    response.headers["Connection"] = "close"
    await response(scope, receive, send)
