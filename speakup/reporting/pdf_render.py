"""The child process that turns an untrusted PDF into raw page pixels, and nothing else.

Run only by :mod:`speakup.reporting.pdf_rebuild` as ``python -I pdf_render.py LIMITS…``: in
isolated mode the child sees no environment variables, no user site and not this package, so
it imports the standard library and pypdfium2 only. Its first act, before a byte of the PDF is
read, is to cap its own CPU time and address space with ``setrlimit``; the parent adds a wall
clock. Whatever the PDF does to PDFium happens here, in a process that holds no secret, no
database connection and no other reporter's data.

Protocol (stdin → stdout, nothing touches the disk): the PDF's bytes in; for each page
``PAGE`` + ``>IIIdd`` (width px, height px, row stride, width pt, height pt) + the RGB rows;
then ``DONE``. A refusal exits with one of the codes below and no output.
"""

from __future__ import annotations

import resource
import struct
import sys

PAGE_HEADER = struct.Struct(">4sIIIdd")
DONE = b"DONE"
#: Exit codes the parent turns into a reporter-facing message.
EXIT_DAMAGED, EXIT_PASSWORD, EXIT_NO_PAGES, EXIT_TOO_MANY_PAGES, EXIT_TOO_BIG = 3, 4, 5, 6, 7
_PDFIUM_PASSWORD_ERROR = 4  # FPDF_ERR_PASSWORD


def limit_self(cpu_seconds: int, memory_bytes: int) -> None:
    """Cap this process: past the CPU limit the kernel kills it (SIGXCPU, then SIGKILL);
    past the address-space limit every allocation fails."""
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash must not dump the PDF to disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # and nothing may write a file


def render(data: bytes, *, max_pages: int, dpi: float, max_page_pixels: int) -> int:
    """Write every page's pixels to stdout; return an exit code."""
    import pypdfium2 as pdfium  # after the limits: its native code is what they guard

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        locked = getattr(exc, "err_code", None) == _PDFIUM_PASSWORD_ERROR
        return EXIT_PASSWORD if locked else EXIT_DAMAGED
    count = len(pdf)
    if count == 0:
        return EXIT_NO_PAGES
    if count > max_pages:
        return EXIT_TOO_MANY_PAGES
    out = sys.stdout.buffer
    for index in range(count):
        page = pdf[index]
        width_pt, height_pt = page.get_size()
        if not (width_pt > 0 and height_pt > 0):
            return EXIT_DAMAGED
        # Print-like resolution, lowered for outsized pages so no page exceeds the pixel cap.
        scale = dpi / 72
        pixels = width_pt * height_pt * scale * scale
        if pixels > max_page_pixels:
            scale *= 0.999 * (max_page_pixels / pixels) ** 0.5  # 0.999: room for rounding up
        # Forms are not initialised: no form environment, so no script can run, and a field
        # shows the appearance the document saved for it.
        bitmap = page.render(scale=scale, rev_byteorder=True, may_draw_forms=False)
        if bitmap.n_channels != 3:
            return EXIT_DAMAGED
        rows = bytes(bitmap.buffer)
        out.write(
            PAGE_HEADER.pack(
                b"PAGE", bitmap.width, bitmap.height, bitmap.stride, width_pt, height_pt
            )
        )
        out.write(rows)
        bitmap.close()
        page.close()
    out.write(DONE)
    out.flush()
    return 0


def main(argv: list[str]) -> int:
    """``pdf_render.py CPU_SECONDS MEMORY_BYTES MAX_PAGES DPI MAX_PAGE_PIXELS``."""
    cpu_seconds, memory_bytes, max_pages, dpi, max_page_pixels = argv
    limit_self(int(cpu_seconds), int(memory_bytes))
    data = sys.stdin.buffer.read()
    try:
        return render(
            data, max_pages=int(max_pages), dpi=float(dpi), max_page_pixels=int(max_page_pixels)
        )
    except MemoryError:  # the address-space limit held
        return EXIT_TOO_BIG


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
