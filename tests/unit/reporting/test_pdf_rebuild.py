"""PDFs are rebuilt from images of their pages, in a limited child process (issue 10 #2).

Each hostile fixture is built here with pikepdf and carries canary strings; a test first checks
that the fixture really holds what it claims (so it cannot pass vacuously), then that the stored
output holds nothing of it: no canary, and no object other than the few a page image needs.
"""

from __future__ import annotations

import io
import re
import signal
import time

import pikepdf
import pypdfium2 as pdfium
import pytest

from speakup.reporting import pdf_render
from speakup.reporting.attachments import (
    PDF_REBUILT,
    AttachmentError,
    SanitisedFile,
    sanitise_attachment,
)
from speakup.reporting.pdf_rebuild import (
    REASON_TOO_COSTLY,
    RenderError,
    RenderLimits,
    rebuild_pdf,
)

MB = 1024 * 1024
A4 = (595, 842)
Name, Dictionary, Array, String = pikepdf.Name, pikepdf.Dictionary, pikepdf.Array, pikepdf.String


def sanitise(data: bytes, limits: RenderLimits | None = None) -> SanitisedFile:
    return sanitise_attachment("report.pdf", data, max_bytes=10 * MB, pdf_limits=limits)


def saved(pdf: pikepdf.Pdf, **options: object) -> bytes:
    out = io.BytesIO()
    pdf.save(out, compress_streams=False, **options)
    return out.getvalue()


def blue_square_pdf(pages: int = 1, size: tuple[float, float] = A4) -> pikepdf.Pdf:
    """Pages with a blue square at (100, 100)–(300, 300) and a line of text."""
    pdf = pikepdf.new()
    drawing = b"0 0 1 rg 100 100 200 200 re f BT /F1 12 Tf 72 712 Td (VISIBLE_CONTENT) Tj ET"
    for _ in range(pages):
        pdf.add_blank_page(page_size=size)
        pdf.pages[-1].obj.Contents = pdf.make_stream(drawing)
    return pdf


def assert_fixture_holds(original: bytes, *canaries: bytes) -> None:
    for canary in canaries:
        assert canary in original, f"fixture is missing {canary!r}"


def assert_only_page_images(data: bytes, pages: int) -> None:
    """The output's whole object tree: catalog, page tree, and per page a page, its drawing
    of one image, and the image (a JPEG). Nothing else can hide anywhere."""
    with pikepdf.open(io.BytesIO(data)) as pdf:
        assert set(pdf.trailer.keys()) <= {"/Root", "/Size", "/ID"}
        assert set(pdf.Root.keys()) == {"/Type", "/Pages"}
        assert len(pdf.pages) == pages
        for page in pdf.pages:
            assert set(page.obj.keys()) == {
                "/Type",
                "/Parent",
                "/MediaBox",
                "/Resources",
                "/Contents",
            }
            assert set(page.Resources.keys()) == {"/XObject"}
            (image,) = page.Resources.XObject.values()
            assert (image.Subtype, image.Filter) == ("/Image", "/DCTDecode")
            assert re.fullmatch(
                rb"q [\d.]+ 0 0 [\d.]+ 0 0 cm /Page Do Q", page.Contents.read_bytes()
            )
        kinds = [obj.get("/Type", obj.get("/Subtype")) for obj in pdf.objects if obj is not None]
        assert sorted(map(str, kinds)) == sorted(
            ["/Catalog", "/Pages"] + ["/Page", "/XObject", "None"] * pages
        )


def blue_at(data: bytes, x_pt: float, y_pt: float, page: int = 0) -> tuple[int, ...]:
    """The colour of the rebuilt page at a point given in PDF units from the bottom left."""
    document = pdfium.PdfDocument(data)
    try:
        bitmap = document[page].render(scale=1)
        image = bitmap.to_pil()
        return tuple(image.getpixel((int(x_pt), int(image.height - y_pt))))
    finally:
        document.close()


# --- what is kept ---------------------------------------------------------------------------


def test_pages_keep_their_look_and_size_and_nothing_else() -> None:
    original = saved(blue_square_pdf(pages=3))
    result = sanitise(original)
    assert (result.content_type, result.filename) == ("application/pdf", "report.pdf")
    assert_only_page_images(result.data, pages=3)
    assert b"VISIBLE_CONTENT" not in result.data  # the text is now pixels
    red, green, blue = blue_at(result.data, 200, 200, page=2)[:3]
    assert blue > 200 and red < 60 and green < 60
    assert sum(blue_at(result.data, 400, 400)[:3]) > 700  # white outside the square
    with pikepdf.open(io.BytesIO(result.data)) as pdf:
        assert [float(v) for v in pdf.pages[0].MediaBox] == [0, 0, 595, 842]


def test_a_rotated_page_is_drawn_as_it_is_shown() -> None:
    pdf = blue_square_pdf()
    pdf.pages[0].obj.Rotate = 90
    with pikepdf.open(io.BytesIO(sanitise(saved(pdf)).data)) as rebuilt:
        assert [float(v) for v in rebuilt.pages[0].MediaBox] == [0, 0, 842, 595]
        assert "/Rotate" not in rebuilt.pages[0].obj


def test_the_reporter_is_told_only_what_is_true() -> None:
    result = sanitise(saved(blue_square_pdf()))
    assert result.removed == (PDF_REBUILT,)
    assert result.notice == (
        "we rebuilt it from images of its pages, so links, scripts, forms, attached files and "
        "hidden details such as the author are not kept, and its text can no longer be "
        "selected or searched."
    )


def test_the_output_carries_no_producer_or_time() -> None:
    original = saved(blue_square_pdf())
    data = sanitise(original).data
    for marker in (b"/Producer", b"/Creator", b"pikepdf", b"qpdf", b"Pillow", b"/Info", b"Date"):
        assert marker not in data
    assert sanitise(original).data == data  # the /ID is a hash of the content, not of the time


def test_an_outsized_page_is_drawn_at_a_lower_resolution_within_the_pixel_cap() -> None:
    limits = RenderLimits(max_page_pixels=2_000_000)
    data = rebuild_pdf(saved(blue_square_pdf(size=(14_400, 14_400))), limits)
    with pikepdf.open(io.BytesIO(data)) as pdf:
        image = next(iter(pdf.pages[0].Resources.XObject.values()))
        assert int(image.Width) * int(image.Height) <= 2_000_000
        assert [float(v) for v in pdf.pages[0].MediaBox] == [0, 0, 14_400, 14_400]


# --- the hostile set ------------------------------------------------------------------------


def open_action_url_then_launch() -> bytes:
    pdf = blue_square_pdf()
    pdf.Root.OpenAction = Dictionary(
        S=Name.URI,
        URI=String("https://attacker.invalid/CANARY_OPEN_URI"),
        Next=Dictionary(
            S=Name.Launch,
            F=String("CANARY_LAUNCH.exe"),
            Win=Dictionary(F=String("cmd.exe"), P=String("/c CANARY_LAUNCH_ARGS")),
        ),
    )
    pdf.pages[0].obj.Annots = Array(
        [
            Dictionary(
                Type=Name.Annot,
                Subtype=Name.Link,
                Rect=[100, 100, 300, 300],
                A=Dictionary(S=Name.URI, URI=String("https://attacker.invalid/CANARY_LINK")),
            )
        ]
    )
    return saved(pdf)


def screen_rendition_javascript() -> bytes:
    pdf = blue_square_pdf()
    pdf.pages[0].obj.Annots = Array(
        [
            Dictionary(
                Type=Name.Annot,
                Subtype=Name.Screen,
                Rect=[72, 72, 200, 200],
                A=Dictionary(
                    S=Name.Rendition, OP=0, JS=String("app.launchURL('CANARY_RENDITION_JS')")
                ),
                AA=Dictionary(PO=Dictionary(S=Name.JavaScript, JS=String("CANARY_PAGE_OPEN_JS()"))),
            )
        ]
    )
    return saved(pdf)


def acroform_xfa_script() -> bytes:
    pdf = blue_square_pdf()
    template = (
        b'<template xmlns="http://www.xfa.org/schema/xfa-template/3.3/"><subform>'
        b'<event activity="docReady"><script contentType="application/x-javascript">'
        b"CANARY_XFA_SCRIPT()</script></event></subform></template>"
    )
    field = pdf.make_indirect(
        Dictionary(
            Type=Name.Annot,
            Subtype=Name.Widget,
            FT=Name.Tx,
            T=String("CANARY_FIELD_NAME"),
            V=String("CANARY_FIELD_VALUE"),
            Rect=[72, 400, 300, 420],
            AA=Dictionary(K=Dictionary(S=Name.JavaScript, JS=String("CANARY_KEYSTROKE_JS()"))),
        )
    )
    pdf.pages[0].obj.Annots = Array([field])
    pdf.Root.AcroForm = Dictionary(
        Fields=Array([field]),
        XFA=Array([String("template"), pdf.make_stream(template)]),
        NeedsRendering=True,
    )
    return saved(pdf)


def embedded_files() -> bytes:
    pdf = blue_square_pdf(pages=2)
    pdf.attachments["evidence.exe"] = pikepdf.AttachedFileSpec(pdf, b"CANARY_EMBEDDED_FILE")
    pdf.pages[1].obj.Annots = Array(
        [
            Dictionary(
                Type=Name.Annot,
                Subtype=Name.FileAttachment,
                Rect=[72, 72, 92, 92],
                FS=pikepdf.AttachedFileSpec(pdf, b"CANARY_ANNOT_FILE").obj,
            )
        ]
    )
    pdf.Root.Names.JavaScript = Dictionary(
        Names=[String("init"), Dictionary(S=Name.JavaScript, JS=String("CANARY_NAMED_JS()"))]
    )
    pdf.Root.Metadata = pdf.make_stream(b"<x:xmpmeta>CANARY_XMP_AUTHOR</x:xmpmeta>")
    pdf.trailer.Info = pdf.make_indirect(Dictionary(Author=String("CANARY_INFO_AUTHOR")))
    return saved(pdf, fix_metadata_version=False)


def incremental_update() -> bytes:
    """A first revision by one author, then an appended revision that renames her: readers
    show the new name, but the old revision stays in the file for anyone to read."""
    pdf = blue_square_pdf()
    pdf.trailer.Info = pdf.make_indirect(Dictionary(Author=String("CANARY_OLD_AUTHOR")))
    first = saved(pdf, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    root = pdf.Root.objgen[0]
    size = int(re.findall(rb"/Size (\d+)", first)[-1])
    previous = int(re.findall(rb"startxref\s+(\d+)", first)[-1])
    body = f"\n{size} 0 obj\n<< /Author (CANARY_NEW_AUTHOR) >>\nendobj\n".encode()
    offset = len(first) + 1
    xref_at = len(first) + len(body)
    update = (
        body
        + (
            f"xref\n{size} 1\n{offset:010d} 00000 n \ntrailer\n"
            f"<< /Size {size + 1} /Root {root} 0 R /Info {size} 0 R /Prev {previous} >>\n"
            f"startxref\n{xref_at}\n%%EOF\n"
        ).encode()
    )
    updated = first + update
    with pikepdf.open(io.BytesIO(updated)) as check:  # the fixture is a real update
        assert str(check.trailer.Info.Author) == "CANARY_NEW_AUTHOR"
    return updated


HOSTILE = {
    "open-action-uri-launch": (
        open_action_url_then_launch,
        [b"CANARY_OPEN_URI", b"CANARY_LAUNCH.exe", b"CANARY_LAUNCH_ARGS", b"CANARY_LINK"],
    ),
    "screen-rendition-js": (
        screen_rendition_javascript,
        [b"CANARY_RENDITION_JS", b"CANARY_PAGE_OPEN_JS", b"/Rendition", b"/Screen"],
    ),
    "acroform-xfa": (
        acroform_xfa_script,
        [b"CANARY_XFA_SCRIPT", b"CANARY_FIELD_NAME", b"CANARY_FIELD_VALUE", b"CANARY_KEYSTROKE"],
    ),
    "embedded-files": (
        embedded_files,
        [
            b"CANARY_EMBEDDED_FILE",
            b"CANARY_ANNOT_FILE",
            b"CANARY_NAMED_JS",
            b"CANARY_XMP_AUTHOR",
            b"CANARY_INFO_AUTHOR",
        ],
    ),
    "incremental-update": (incremental_update, [b"CANARY_OLD_AUTHOR", b"CANARY_NEW_AUTHOR"]),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_nothing_of_a_hostile_pdf_survives_in_the_stored_file(name: str) -> None:
    build, canaries = HOSTILE[name]
    original = build()
    assert_fixture_holds(original, *canaries)
    result = sanitise(original)
    for canary in canaries:
        assert canary not in result.data, f"{canary!r} survived"
    for key in (b"/OpenAction", b"/AA", b"/JS", b"/JavaScript", b"/Launch", b"/URI", b"/Annots"):
        assert key not in result.data
    for key in (b"/AcroForm", b"/XFA", b"/EmbeddedFiles", b"/Names", b"/Metadata", b"/Prev"):
        assert key not in result.data
    assert result.data.count(b"%%EOF") == 1
    assert_only_page_images(result.data, pages=len(pikepdf.open(io.BytesIO(original)).pages))


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"%PDF-1.7\nthis is not really a pdf\n", id="garbage"),
        pytest.param(saved(blue_square_pdf())[:80], id="truncated"),
        pytest.param(b"%PDF-", id="header-only"),
        pytest.param(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 1 0 R >> endobj\n", id="loop"),
    ],
)
def test_a_malformed_pdf_is_refused_with_a_clear_message(data: bytes) -> None:
    with pytest.raises(AttachmentError) as caught:
        sanitise(data)
    assert str(caught.value) in (
        '"report.pdf" looks damaged and can\'t be opened as a PDF.',
        '"report.pdf" has no pages, so there is nothing to attach.',
    )


def test_a_password_protected_pdf_is_refused() -> None:
    locked = saved(blue_square_pdf(), encryption=pikepdf.Encryption(owner="o", user="secret"))
    with pytest.raises(AttachmentError) as caught:
        sanitise(locked)
    assert str(caught.value) == (
        '"report.pdf" is password-protected. Please attach a copy without a password.'
    )


def test_owner_only_encryption_is_dropped_with_the_rest() -> None:
    # Opens without a password, so it is drawn; the new file is not encrypted.
    original = saved(blue_square_pdf(), encryption=pikepdf.Encryption(owner="o", user=""))
    data = sanitise(original).data
    assert b"/Encrypt" in original and b"/Encrypt" not in data


def test_a_pdf_without_pages_is_refused() -> None:
    # PDFium will not even open an empty page tree, so this one reads as damaged.
    with pytest.raises(AttachmentError, match="(has no pages|looks damaged)"):
        sanitise(saved(pikepdf.new()))


def test_a_1000_page_pdf_is_refused_by_the_page_limit_quickly() -> None:
    pdf = pikepdf.new()
    for _ in range(1000):
        pdf.add_blank_page()
    original = saved(pdf)
    started = time.monotonic()
    with pytest.raises(AttachmentError) as caught:
        sanitise(original)
    assert time.monotonic() - started < 10  # no page was drawn (drawing 1,000 takes minutes)
    assert str(caught.value) == (
        '"report.pdf" has more than 50 pages. Please attach up to 50 pages per file, for '
        "example by saving the pages that matter as a separate PDF."
    )


def test_the_page_limit_is_the_configured_one() -> None:
    original = saved(blue_square_pdf(pages=3))
    assert sanitise(original, RenderLimits(max_pages=3))
    with pytest.raises(AttachmentError, match="more than 2 pages"):
        sanitise(original, RenderLimits(max_pages=2))


# --- the renderer's limits hold --------------------------------------------------------------


def costly_pdf(pages: int = 3, triangles: int = 3000) -> bytes:
    """Pages of thousands of overlapping filled triangles: seconds of CPU to draw."""
    pdf = pikepdf.new()
    drawing = b"".join(
        b"%d %d m %d %d l %d %d l h f\n"
        % (i % 500, i % 700, (i * 7) % 595, (i * 13) % 842, (i * 3) % 595, (i * 5) % 842)
        for i in range(triangles)
    )
    contents = pdf.make_stream(drawing)
    for _ in range(pages):
        pdf.add_blank_page(page_size=A4)
        pdf.pages[-1].obj.Contents = contents
    return saved(pdf)


def test_a_renderer_over_its_cpu_limit_is_killed_and_reported() -> None:
    with pytest.raises(RenderError) as caught:
        rebuild_pdf(costly_pdf(), RenderLimits(cpu_seconds=1, timeout_seconds=120))
    assert caught.value.reason == REASON_TOO_COSTLY
    # Killed by the kernel for its CPU time (SIGXCPU at the soft limit, SIGKILL at the hard).
    assert caught.value.exit_code in (-signal.SIGXCPU, -signal.SIGKILL)


def test_a_renderer_over_its_memory_limit_fails_and_is_reported() -> None:
    # A 200-inch page drawn at full resolution needs ~2.7 GB of pixels; the child has 256 MB.
    huge_page = saved(blue_square_pdf(size=(14_400, 14_400)))
    limits = RenderLimits(max_page_pixels=10**10, memory_bytes=256 * MB, timeout_seconds=60)
    with pytest.raises(RenderError) as caught:
        rebuild_pdf(huge_page, limits)
    assert caught.value.reason == REASON_TOO_COSTLY
    assert caught.value.exit_code == pdf_render.EXIT_TOO_BIG


def test_a_renderer_past_its_wall_time_is_killed_and_reported() -> None:
    started = time.monotonic()
    with pytest.raises(RenderError) as caught:
        rebuild_pdf(costly_pdf(), RenderLimits(timeout_seconds=0.5))
    assert time.monotonic() - started < 5
    assert (caught.value.reason, caught.value.exit_code) == (REASON_TOO_COSTLY, None)


def test_the_reporter_is_told_plainly_when_a_pdf_is_too_costly() -> None:
    with pytest.raises(AttachmentError) as caught:
        sanitise(costly_pdf(), RenderLimits(timeout_seconds=0.5))
    assert str(caught.value) == (
        '"report.pdf" took too long or needed too much memory to open safely. Please attach '
        "a shorter or simpler copy, for example the pages that matter saved as a separate PDF."
    )


def test_the_renderer_runs_isolated_from_the_application() -> None:
    # -I: no environment, no user site, not this package; limits set before reading input.
    source = pdf_render.__file__
    with open(source, encoding="utf-8") as fh:
        text = fh.read()
    assert "import speakup" not in text and "from speakup" not in text
    main = text[text.index("def main(") :]
    assert main.index("limit_self(") < main.index("sys.stdin.buffer.read()")
