"""Go's ``net/http.DetectContentType``, ported: the ``Content-Type`` the upstream gateway's Go server
gave a sync response whose function set none.

Go's ``ResponseWriter`` sniffs the first 512 bytes of a body written without a ``Content-Type`` (and
only a non-empty one). This is the table of ``src/net/http/sniff.go`` as of Go 1.10, the Go the upstream
gateway 0.9.1 was built with (its ``image/vnd.microsoft.icon`` and ``Rar `` signatures included), in the
same order: the first signature that matches wins, text that has no binary control bytes is
``text/plain; charset=utf-8``, anything else ``application/octet-stream``.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["SNIFF_LEN", "detect_content_type"]

#: The algorithm uses at most this many bytes.
SNIFF_LEN = 512
_WS = b"\t\n\x0c\r "

_Sig = Callable[[bytes, int], str]


def _html(pattern: bytes) -> _Sig:
    def match(data: bytes, first_non_ws: int) -> str:
        data = data[first_non_ws:]
        if len(data) < len(pattern) + 1:
            return ""
        for index, expected in enumerate(pattern):
            got = data[index]
            if 0x41 <= expected <= 0x5A:  # an upper-case letter in the pattern matches either case
                got &= 0xDF
            if got != expected:
                return ""
        if data[len(pattern)] not in b" >":  # the next byte must be a space or '>'
            return ""
        return "text/html; charset=utf-8"
    return match


def _masked(mask: bytes, pattern: bytes, content_type: str, skip_ws: bool = False) -> _Sig:
    def match(data: bytes, first_non_ws: int) -> str:
        if skip_ws:
            data = data[first_non_ws:]
        if len(data) < len(mask):
            return ""
        for index, bits in enumerate(mask):
            if data[index] & bits != pattern[index]:
                return ""
        return content_type
    return match


def _exact(signature: bytes, content_type: str) -> _Sig:
    def match(data: bytes, first_non_ws: int) -> str:
        return content_type if data.startswith(signature) else ""
    return match


def _mp4(data: bytes, first_non_ws: int) -> str:
    # https://mimesniff.spec.whatwg.org/#signature-for-mp4
    if len(data) < 12:
        return ""
    box_size = int.from_bytes(data[:4], "big")
    if box_size % 4 != 0 or len(data) < box_size:
        return ""
    if data[4:8] != b"ftyp":
        return ""
    for start in range(8, box_size, 4):
        if start == 12:  # the minor version number
            continue
        if data[start:start + 3] == b"mp4":
            return "video/mp4"
    return ""


def _text(data: bytes, first_non_ws: int) -> str:
    for byte in data[first_non_ws:]:
        if byte <= 0x08 or byte == 0x0B or 0x0E <= byte <= 0x1A or 0x1C <= byte <= 0x1F:
            return ""
    return "text/plain; charset=utf-8"


_SIGNATURES: tuple[_Sig, ...] = (
    *(_html(tag) for tag in (
        b"<!DOCTYPE HTML", b"<HTML", b"<HEAD", b"<SCRIPT", b"<IFRAME", b"<H1", b"<DIV", b"<FONT", b"<TABLE",
        b"<A", b"<STYLE", b"<TITLE", b"<B", b"<BODY", b"<BR", b"<P", b"<!--")),
    _masked(b"\xff\xff\xff\xff\xff", b"<?xml", "text/xml; charset=utf-8", skip_ws=True),
    _exact(b"%PDF-", "application/pdf"),
    _exact(b"%!PS-Adobe-", "application/postscript"),
    # UTF byte order marks
    _masked(b"\xff\xff\x00\x00", b"\xfe\xff\x00\x00", "text/plain; charset=utf-16be"),
    _masked(b"\xff\xff\x00\x00", b"\xff\xfe\x00\x00", "text/plain; charset=utf-16le"),
    _masked(b"\xff\xff\xff\x00", b"\xef\xbb\xbf\x00", "text/plain; charset=utf-8"),
    _exact(b"GIF87a", "image/gif"),
    _exact(b"GIF89a", "image/gif"),
    _exact(b"\x89PNG\r\n\x1a\n", "image/png"),
    _exact(b"\xff\xd8\xff", "image/jpeg"),
    _exact(b"BM", "image/bmp"),
    _masked(b"\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff", b"RIFF\x00\x00\x00\x00WEBPVP", "image/webp"),
    _exact(b"\x00\x00\x01\x00", "image/vnd.microsoft.icon"),
    _exact(b"OggS\x00", "application/ogg"),
    _masked(b"\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff", b"RIFF\x00\x00\x00\x00WAVE", "audio/wave"),
    _exact(b"\x1a\x45\xdf\xa3", "video/webm"),
    _exact(b"Rar \x1a\x07\x00", "application/x-rar-compressed"),
    _exact(b"PK\x03\x04", "application/zip"),
    _exact(b"\x1f\x8b\x08", "application/x-gzip"),
    _mp4,
    _text,  # last
)


def detect_content_type(data: bytes) -> str:
    """The media type Go's ``http.DetectContentType`` gives ``data``; never empty
    (``application/octet-stream`` when nothing more specific matches)."""
    data = data[:SNIFF_LEN]
    first_non_ws = 0
    while first_non_ws < len(data) and data[first_non_ws] in _WS:
        first_non_ws += 1
    for signature in _SIGNATURES:
        content_type = signature(data, first_non_ws)
        if content_type:
            return content_type
    return "application/octet-stream"
