# End-to-end tests of the media repository: matrix-nio's upload, download and thumbnail against a real `converge serve`.
"""Files go up through nio's AsyncClient.upload and come back byte for byte through
AsyncClient.download (the authenticated /_matrix/client/v1/media endpoints); an image gets
a thumbnail; an image message in a room carries the mxc:// URI to the other user."""

from __future__ import annotations

import io
import os
import struct
import zlib

from nio import (
    DownloadResponse,
    RoomCreateResponse,
    RoomSendResponse,
    ThumbnailResponse,
    UploadResponse,
)
from nio.api import ResizingMethod

from e2e_support import fresh_username, join_room, nio_client, register_user, run

PASSWORD = "media-e2e-password"


def png(width: int, height: int) -> bytes:
    """A small RGB PNG, built by hand so the test needs no imaging library."""
    raw = b"".join(b"\x00" + bytes((x * 7 + y) % 256 for x in range(width * 3)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


async def upload(client, data: bytes, content_type: str, filename: str) -> str:
    resp, _keys = await client.upload(io.BytesIO(data), content_type=content_type, filename=filename, filesize=len(data))
    assert isinstance(resp, UploadResponse), resp
    assert resp.content_uri.startswith("mxc://localhost/")
    return resp.content_uri


def test_upload_and_download_are_byte_identical(server):
    async def flow():
        user = fresh_username("media")
        async with nio_client(server) as client:
            reg = await client.register(user, PASSWORD)
            assert reg.access_token
            data = os.urandom(700_000)
            uri = await upload(client, data, "application/octet-stream", "blob.bin")
            got = await client.download(mxc=uri)
            assert isinstance(got, DownloadResponse), got
            assert got.body == data
            assert got.filename == "blob.bin"
            # The name asked for in the URL wins.
            named = await client.download(mxc=uri, filename="other.bin")
            assert isinstance(named, DownloadResponse), named
            assert named.body == data and named.filename == "other.bin"

    run(flow())


def test_thumbnail_of_an_uploaded_image(server):
    async def flow():
        user = fresh_username("thumb")
        async with nio_client(server) as client:
            await client.register(user, PASSWORD)
            uri = await upload(client, png(400, 300), "image/png", "photo.png")
            server_name, media_id = uri[len("mxc://"):].split("/", 1)
            thumb = await client.thumbnail(server_name, media_id, 96, 96, ResizingMethod.crop)
            assert isinstance(thumb, ThumbnailResponse), thumb
            assert thumb.content_type == "image/png"
            assert thumb.body.startswith(b"\x89PNG")
            width, height = struct.unpack(">II", thumb.body[16:24])
            assert (width, height) == (96, 96)

    run(flow())


def test_an_image_message_reaches_the_other_user(server):
    async def flow():
        alice, bob = fresh_username("alice"), fresh_username("bob")
        async with nio_client(server) as a, nio_client(server) as b:
            await a.register(alice, PASSWORD)
            await b.register(bob, PASSWORD)
            room = await a.room_create(invite=[b.user_id])
            assert isinstance(room, RoomCreateResponse), room
            joined = await join_room(b, room.room_id)
            assert joined.room_id == room.room_id
            image = png(64, 48)
            uri = await upload(a, image, "image/png", "cat.png")
            content = {"msgtype": "m.image", "body": "cat.png", "url": uri, "info": {"mimetype": "image/png", "size": len(image), "w": 64, "h": 48}}
            sent = await a.room_send(room.room_id, "m.room.message", content)
            assert isinstance(sent, RoomSendResponse), sent
            sync = await b.sync(timeout=5000, full_state=True)
            events = sync.rooms.join[room.room_id].timeline.events
            urls = [getattr(e, "url", None) for e in events]
            assert uri in urls, urls
            got = await b.download(mxc=uri)
            assert isinstance(got, DownloadResponse), got
            assert got.body == image

    run(flow())
