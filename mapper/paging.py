"""Page tokens of ListEdges: the cursor of keyset paging. Pure, no I/O.

A token holds the sort key (netmapper_api.keys.sort_key) of the last edge a page returned; the next page
starts after it. Concurrent writes never shift a page: an edge that exists for the whole listing is
returned exactly once, and an edge created meanwhile appears if its key sorts after the cursor.
"""
from __future__ import annotations

import base64
import binascii
from typing import Final

from mapper.filters import InvalidQuery

_PAGE_TOKEN_PREFIX: Final[bytes] = b"k1:"


def encode_page_token(sort_key: str) -> str:
    """The token of the page that starts after the edge whose keys.sort_key is `sort_key`."""
    return base64.urlsafe_b64encode(_PAGE_TOKEN_PREFIX + sort_key.encode()).decode()


def decode_page_token(token: str) -> str:
    """The sort key a page token continues after; raises InvalidQuery for a token this mapper did not make."""
    try:
        raw = base64.urlsafe_b64decode(token.encode())
        if not raw.startswith(_PAGE_TOKEN_PREFIX):
            raise ValueError("unknown prefix")
        return raw[len(_PAGE_TOKEN_PREFIX):].decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidQuery("page_token is not one this mapper issued") from None
