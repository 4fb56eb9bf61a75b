"""The WebSocket ceiling of ``bench.reserve_ws``: a bare Starlette endpoint on uvicorn, configured as
``livedrop serve`` runs it (uvloop, websockets-sansio, no compression), that answers every ``reserve``
frame at once with a ``reserved`` frame, doing nothing else. What one process of this stack answers per
second is the most a node could answer, whatever it does about stock.

    python -m bench.echo_server --port 8765
"""

from __future__ import annotations

import argparse

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


class _Request(msgspec.Struct):
    type: str
    ref: str = ""


_decode = msgspec.json.Decoder(_Request).decode
_WELCOME = '{"type":"welcome","seq":0}'


async def endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(_WELCOME)
    try:
        while True:
            request = _decode(await websocket.receive_text())
            await websocket.send_text(f'{{"type":"reserved","ref":"{request.ref}","hold":"h","qty":1}}')
    except WebSocketDisconnect:
        pass


app = Starlette(routes=[WebSocketRoute("/ws/shows/{show_id}", endpoint)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        log_level="warning",
        lifespan="off",
    )


if __name__ == "__main__":
    main()
