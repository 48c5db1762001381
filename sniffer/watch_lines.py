"""Line framing of a Kubernetes watch response: one JSON event per line, lines split across chunks."""
from __future__ import annotations

from collections.abc import Iterator

import urllib3


def iter_watch_lines(resp: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """Split a chunked watch response into lines as chunks arrive (one JSON event per line)."""
    buf = bytearray()
    for chunk in resp.stream(amt=None, decode_content=True):
        buf.extend(chunk)
        while (nl := buf.find(b"\n")) != -1:
            line = bytes(buf[:nl])
            del buf[: nl + 1]
            if line.strip():
                yield line
    if buf.strip():
        yield bytes(buf)
