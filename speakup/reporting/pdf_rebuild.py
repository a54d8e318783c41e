"""Rebuild a reporter's PDF from images of its pages, so nothing of the original survives.

Filtering a PDF (deleting the keys known to be dangerous) loses to the next key nobody listed:
actions that open a URL and chain to ``/Launch``, ``/Rendition`` JavaScript on a ``/Screen``
annotation, ``/XFA`` scripts, earlier revisions kept by incremental updates. Instead, as
Dangerzone does, a well-kept renderer (PDFium) draws each page in a child process with CPU,
memory and wall-time limits (:mod:`speakup.reporting.pdf_render`); this process reads back only
raw RGB pixels of bounded size, re-encodes each page as a JPEG and writes a brand-new PDF
holding one image per page. No object, stream, font, link, form or metadata of the original is
copied. The price, said to the reporter: the text can no longer be selected or searched.

The parent never parses the untrusted PDF itself; everything travels through pipes, so the
unencrypted document never touches the disk (DESIGN §3.1).
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import subprocess  # nosec B404
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pikepdf
from PIL import Image

from speakup.reporting import pdf_render

_CHILD = str(Path(pdf_render.__file__).resolve())
MB = 1024 * 1024


@dataclass(frozen=True)
class RenderLimits:
    """What one PDF may cost. The defaults match ``config/defaults.toml`` ``[attachments]``."""

    max_pages: int = 50
    dpi: float = 150.0
    #: An outsized page is drawn at a lower resolution rather than at more pixels than this.
    max_page_pixels: int = 6_000_000
    cpu_seconds: int = 20
    memory_bytes: int = 1024 * MB
    timeout_seconds: float = 30.0
    jpeg_quality: int = 85


class RenderError(Exception):
    """The PDF was refused; ``reason`` is one of the ``REASON_*`` constants."""

    def __init__(self, reason: str, exit_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        #: How the renderer ended (negative: killed by that signal); None if it was still
        #: running at the deadline or had not ended. For logs and tests, never for reporters.
        self.exit_code = exit_code


REASON_DAMAGED = "damaged"
REASON_LOCKED = "locked"
REASON_NO_PAGES = "no pages"
REASON_TOO_MANY_PAGES = "too many pages"
#: Killed by a limit (CPU, memory or wall time), or any other unexpected end of the child.
REASON_TOO_COSTLY = "too costly"

_EXIT_REASONS = {
    pdf_render.EXIT_DAMAGED: REASON_DAMAGED,
    pdf_render.EXIT_PASSWORD: REASON_LOCKED,
    pdf_render.EXIT_NO_PAGES: REASON_NO_PAGES,
    pdf_render.EXIT_TOO_MANY_PAGES: REASON_TOO_MANY_PAGES,
}


class _Ended(Exception):
    """The child closed its output early."""


def rebuild_pdf(data: bytes, limits: RenderLimits | None = None) -> bytes:
    """Return a new PDF made of one JPEG image per page of ``data``.

    Raises :class:`RenderError` for a damaged, locked, empty or too long PDF, and when the
    renderer exceeds its CPU, memory or time limit.
    """
    limits = limits or RenderLimits()
    argv = [
        sys.executable,
        "-I",  # isolated: no environment, no user site, not even this package on the path
        _CHILD,
        str(limits.cpu_seconds),
        str(limits.memory_bytes),
        str(limits.max_pages),
        str(limits.dpi),
        str(limits.max_page_pixels),
    ]
    deadline = time.monotonic() + limits.timeout_seconds
    # A fixed argv of our own script, no shell; the untrusted PDF goes in on stdin only.
    child = subprocess.Popen(  # noqa: S603  # nosec B603
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        env={},
    )
    stdin, stdout = child.stdin, child.stdout
    if stdin is None or stdout is None:  # pragma: no cover (both are PIPE above)
        raise RuntimeError("renderer pipes missing")
    feeder = threading.Thread(target=_feed, args=(stdin, data), daemon=True)
    feeder.start()
    try:
        return _build(_Reader(stdout.fileno(), deadline), limits)
    except _Ended:
        code = _wait(child, deadline)
        reason = REASON_TOO_COSTLY if code is None else _EXIT_REASONS.get(code, REASON_TOO_COSTLY)
        raise RenderError(reason, code) from None
    except TimeoutError:
        raise RenderError(REASON_TOO_COSTLY) from None
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        stdout.close()
        feeder.join()


def _feed(pipe: IO[bytes], data: bytes) -> None:
    try:
        pipe.write(data)
    except (BrokenPipeError, ValueError):
        pass  # the child ended (refused or killed) before reading everything
    finally:
        with contextlib.suppress(BrokenPipeError):
            pipe.close()


def _wait(child: subprocess.Popen[bytes], deadline: float) -> int | None:
    try:
        return child.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return None


class _Reader:
    """Exact-size reads from the child's stdout that give up at the wall-time deadline."""

    def __init__(self, fd: int, deadline: float) -> None:
        self.fd, self.deadline = fd, deadline

    def read(self, size: int) -> bytes:
        buffer = bytearray()
        while len(buffer) < size:
            remaining = self.deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(0.0, remaining))
            if not ready:
                raise TimeoutError
            chunk = os.read(self.fd, min(size - len(buffer), MB))
            if not chunk:
                raise _Ended
            buffer += chunk
        return bytes(buffer)


def _build(reader: _Reader, limits: RenderLimits) -> bytes:
    """Read page frames until ``DONE`` and assemble the new PDF one page at a time."""
    pdf = pikepdf.new()
    while True:
        tag = reader.read(4)
        if tag == pdf_render.DONE:
            break
        rest = reader.read(pdf_render.PAGE_HEADER.size - 4)
        _, width, height, stride, width_pt, height_pt = pdf_render.PAGE_HEADER.unpack(tag + rest)
        # The child is not trusted either: check the frame before allocating for it.
        if (
            tag != b"PAGE"
            or len(pdf.pages) >= limits.max_pages
            or not (
                width > 0
                and height > 0
                and width * height <= limits.max_page_pixels + width + height
            )
            or not (width * 3 <= stride <= width * 3 + 3)
            or not (0 < width_pt < 1e6 and 0 < height_pt < 1e6)
        ):
            raise RenderError(REASON_DAMAGED)
        rows = reader.read(stride * height)
        image = Image.frombuffer("RGB", (width, height), rows, "raw", "RGB", stride, 1)
        _add_page(pdf, image, width_pt, height_pt, limits.jpeg_quality)
    if len(pdf.pages) == 0:
        raise RenderError(REASON_NO_PAGES)
    out = io.BytesIO()
    # deterministic_id: the /ID is a hash of the content, not of the time of saving.
    pdf.save(out, deterministic_id=True, fix_metadata_version=False)
    return out.getvalue()


def _add_page(
    pdf: pikepdf.Pdf, image: Image.Image, width_pt: float, height_pt: float, quality: int
) -> None:
    jpeg = io.BytesIO()
    image.save(jpeg, "JPEG", quality=quality)  # pixels only: Pillow writes no EXIF or comment
    picture = pikepdf.Stream(
        pdf,
        jpeg.getvalue(),
        Type=pikepdf.Name.XObject,
        Subtype=pikepdf.Name.Image,
        Width=image.width,
        Height=image.height,
        ColorSpace=pikepdf.Name.DeviceRGB,
        BitsPerComponent=8,
        Filter=pikepdf.Name.DCTDecode,
    )
    drawing = f"q {width_pt:.3f} 0 0 {height_pt:.3f} 0 0 cm /Page Do Q".encode()
    page = pikepdf.Dictionary(
        Type=pikepdf.Name.Page,
        MediaBox=[0, 0, round(width_pt, 3), round(height_pt, 3)],
        Resources=pikepdf.Dictionary(XObject=pikepdf.Dictionary(Page=picture)),
        Contents=pikepdf.Stream(pdf, drawing),
    )
    pdf.pages.append(pikepdf.Page(page))
