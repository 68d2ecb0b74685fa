"""``Content-Encoding`` of request bodies, as API Gateway handles it: decompressed before anything else, bounded.

API Gateway decompresses ``gzip`` and ``deflate`` request bodies (the REST API has ``minimumCompressionSize`` set)
and answers ``415`` when the coding is unknown or the body is not encoded with it. The 1 MiB limit is SQS's and so
applies to the decompressed body. Here the decompression is streamed with an output bound: a gzip bomb (a few KB
that inflate to gigabytes) costs at most ``limit + 1`` bytes of memory and gets a ``413``.

Example:
    >>> import gzip
    >>> decode_body(gzip.compress(b'{"batch": []}'), "gzip", limit=1024)
    b'{"batch": []}'
    >>> decode_body(gzip.compress(b"0" * 5000), "gzip", limit=1024)
    Traceback (most recent call last):
    ...
    tools.local.content_encoding.DecodedTooLarge: the decompressed body is over 1024 bytes
"""

from __future__ import annotations

import zlib

GZIP_WBITS = 16 + zlib.MAX_WBITS
ZLIB_WBITS = zlib.MAX_WBITS
RAW_DEFLATE_WBITS = -zlib.MAX_WBITS
IDENTITY = ("", "identity")


class UnsupportedEncoding(ValueError):
    """The coding is not one API Gateway decompresses, or the body is not encoded with it (API Gateway: 415)."""


class DecodedTooLarge(ValueError):
    """The decompressed body is over the limit (413)."""


def decode_body(body: bytes, content_encoding: str | None, *, limit: int) -> bytes:
    """``body`` decoded per its ``Content-Encoding`` (``gzip``, ``x-gzip``, ``deflate``, ``identity``)."""
    coding = (content_encoding or "").strip().lower()
    if coding in IDENTITY:
        return body
    if coding in ("gzip", "x-gzip"):
        return _inflate_members(body, GZIP_WBITS, limit)
    if coding == "deflate":  # RFC 9110: the zlib format; some clients send raw deflate
        try:
            return _inflate_members(body, ZLIB_WBITS, limit, single=True)
        except UnsupportedEncoding:
            return _inflate_members(body, RAW_DEFLATE_WBITS, limit, single=True)
    raise UnsupportedEncoding(f"Content-Encoding {coding!r} is not supported (gzip, deflate, identity)")


def _inflate_members(data: bytes, wbits: int, limit: int, *, single: bool = False) -> bytes:
    """Inflate ``data`` (gzip may hold several members, one after the other) into at most ``limit`` bytes."""
    out = bytearray()
    remaining = data
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            out += inflater.decompress(remaining, limit + 1 - len(out))  # max_length >= 1: never "unbounded"
        except zlib.error as exc:
            raise UnsupportedEncoding(f"the body is not valid {_name(wbits)} data ({exc})") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise DecodedTooLarge(f"the decompressed body is over {limit} bytes")
        if not inflater.eof:
            raise UnsupportedEncoding(f"the body is truncated {_name(wbits)} data")
        remaining = inflater.unused_data
        if single or not remaining:
            return bytes(out)


def _name(wbits: int) -> str:
    return "gzip" if wbits == GZIP_WBITS else "deflate"
