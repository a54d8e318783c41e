"""Attachment sanitising (DESIGN §3 promise 2): type from content, metadata gone, pixels kept.

Every fixture is built here, with a canary string planted in each kind of metadata; a test
first checks the canary is really in the input, so it cannot pass vacuously.
"""

from __future__ import annotations

import io
import struct
import warnings
import zipfile
import zlib

import pikepdf
import pytest
from PIL import ExifTags, Image, ImageCms, ImageFile, ImageOps
from PIL.PngImagePlugin import PngInfo

from speakup.reporting.attachments import (
    MAX_NAME_CHARS,
    AttachmentError,
    SanitisedFile,
    sanitise_attachment,
)

MB = 1024 * 1024
LIMIT = 10 * MB
EXIF_GPS = "camera and location details (EXIF)"
EXIF = "camera details (EXIF)"
XMP = "editing and author details (XMP)"
COMMENT = "comments saved in the image"
IPTC = "captions and author details (IPTC)"
ICC = "colour profile"
PNG_TEXT = "text details such as author or software (PNG text chunks)"
PNG_TIME = "the date the image was last changed"
OTHER = "other data saved by the camera or editing software"
UNSUPPORTED = "can't be attached. You can attach PDF, JPEG, PNG or plain text files."
XMP_PACKET = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/">'
    b"<dc:creator>%s</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>"
    b'<?xpacket end="w"?>'
)


def sanitise(name: str, data: bytes, max_bytes: int = LIMIT) -> SanitisedFile:
    return sanitise_attachment(name, data, max_bytes=max_bytes)


# --- fixture builders -------------------------------------------------------------------------


def two_colour_image(size: tuple[int, int] = (64, 32), mode: str = "RGB") -> Image.Image:
    """Left half red, right half blue: orientation mistakes show up as swapped colours."""
    image = Image.new(mode, size, (255, 0, 0))
    image.paste((0, 0, 255), (size[0] // 2, 0, size[0], size[1]))
    return image


def camera_exif(*, gps: bool = True, orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "CANARY_MAKE"
    exif[ExifTags.Base.Model] = "CANARY_MODEL"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    if gps:
        exif[ExifTags.Base.GPSInfo] = {
            ExifTags.GPS.GPSLatitudeRef: "N",
            ExifTags.GPS.GPSLatitude: (51.0, 30.0, 26.0),
            ExifTags.GPS.GPSLongitudeRef: "W",
            ExifTags.GPS.GPSLongitude: (0.0, 7.0, 39.0),
            ExifTags.GPS.GPSAreaInformation: "CANARY_GPS_AREA",
        }
    return exif


def jpeg_bytes(image: Image.Image | None = None, **save_options: object) -> bytes:
    out = io.BytesIO()
    (image or two_colour_image()).save(out, "JPEG", quality=95, **save_options)
    return out.getvalue()


def with_jpeg_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    """Insert an APPn segment straight after the SOI marker."""
    return jpeg[:2] + struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload + jpeg[2:]


def exif_with_broken_subdirectory() -> bytes:
    """EXIF whose base directory is sound (Make, Orientation 6) but whose Exif sub-directory
    pointer runs past the end, as in some real phone photos."""
    entries = [
        (ExifTags.Base.Make, 2, 12, 8 + 2 + 3 * 12 + 4),  # ASCII, stored after the directory
        (ExifTags.Base.Orientation, 3, 1, 6 << 16),  # SHORT, left-justified in the field
        (ExifTags.Base.ExifOffset, 4, 1, 0xFFFF),  # LONG pointer to nowhere
    ]
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, len(entries))
    for tag, kind, count, value in entries:
        tiff += struct.pack(">HHII", tag, kind, count, value)
    return b"Exif\x00\x00" + tiff + struct.pack(">I", 0) + b"CANARY_MAKE\x00"


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bytes(image: Image.Image | None = None, **save_options: object) -> bytes:
    out = io.BytesIO()
    (image or two_colour_image()).save(out, "PNG", **save_options)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header claiming huge dimensions, with almost no pixel data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def png_chunk_types(data: bytes) -> list[bytes]:
    kinds, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        kinds.append(kind)
        pos += 12 + length
    return kinds


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def pdf_bytes(pdf: pikepdf.Pdf, **save_options: object) -> bytes:
    out = io.BytesIO()
    pdf.save(out, compress_streams=False, **save_options)
    return out.getvalue()


def simple_pdf(pages: int = 1, **save_options: object) -> bytes:
    pdf = pikepdf.new()
    for _ in range(pages):
        pdf.add_blank_page()
    return pdf_bytes(pdf, **save_options)


def assert_canaries(before: bytes, after: bytes, *canaries: bytes) -> None:
    for canary in canaries:
        assert canary in before, f"fixture is missing {canary!r}"
        assert canary not in after, f"{canary!r} survived sanitising"


# --- type detection ---------------------------------------------------------------------------


def test_png_named_pdf_is_accepted_as_png_and_renamed() -> None:
    result = sanitise("scan.pdf", png_bytes())
    assert result.content_type == "image/png"
    assert result.filename == "scan.png"
    assert Image.open(io.BytesIO(result.data)).format == "PNG"


def test_png_named_jpg_becomes_png() -> None:
    assert sanitise("photo.jpg", png_bytes()).filename == "photo.png"


def test_jpeg_named_txt_is_accepted_as_jpeg() -> None:
    result = sanitise("notes.txt", jpeg_bytes())
    assert (result.content_type, result.filename) == ("image/jpeg", "notes.jpg")


def test_pdf_named_png_is_accepted_as_pdf() -> None:
    result = sanitise("picture.png", simple_pdf())
    assert (result.content_type, result.filename) == ("application/pdf", "picture.pdf")


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("report.txt", "hello")
    return out.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(zip_bytes(), id="zip"),
        pytest.param(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" * 8, id="exe"),
        pytest.param(b"\x7fELF\x02\x01\x01\x00" + bytes(56), id="elf"),
        pytest.param(b"<!DOCTYPE html><html><body>hi</body></html>", id="html-doctype"),
        pytest.param(b"\n  <script>alert(1)</script>", id="html-script"),
        pytest.param(b"<svg xmlns='http://www.w3.org/2000/svg'/>", id="svg"),
        pytest.param(b'<?xml version="1.0"?><a/>', id="xml"),
        pytest.param(b"\xef\xbb\xbf<HTML>", id="html-after-bom"),
        pytest.param(b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00;", id="gif"),
        pytest.param(b"plain words then a NUL\x00", id="text-with-nul"),
        pytest.param(b"escape \x1b[31m red", id="text-with-escape"),
        pytest.param("C1 control \x85 here".encode(), id="text-with-c1-control"),
        pytest.param("caf\xe9".encode("latin-1"), id="not-utf8"),
    ],
)
def test_other_content_named_pdf_is_rejected(data: bytes) -> None:
    with pytest.raises(AttachmentError) as caught:
        sanitise("evidence.pdf", data)
    assert str(caught.value) == f'"evidence.pdf" {UNSUPPORTED}'


def test_text_that_merely_mentions_html_is_still_text() -> None:
    data = b"My manager said <p> tags are fine.\n<b>not at the start</b>\n"
    assert sanitise("notes.txt", data).content_type == "text/plain"


# --- text -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"Line one\r\nLine two\ttabbed\fpage\n",
        "\ufeffBOM first, then caf\u00e9 and \u2603 and emoji \U0001f600".encode(),
        "\u00a0non-breaking spaces\u00a0 trailing space   \n\n\n".encode(),
    ],
)
def test_text_is_returned_byte_for_byte(data: bytes) -> None:
    result = sanitise("notes.txt", data)
    assert result == SanitisedFile("notes.txt", "text/plain", data, ())


def test_text_keeps_its_extension_honest() -> None:
    assert sanitise("run-me.exe", b"just words").filename == "run-me.txt"
    assert sanitise("README", b"just words").filename == "README.txt"


# --- size and emptiness ------------------------------------------------------------------------


def test_empty_file_is_rejected() -> None:
    with pytest.raises(AttachmentError, match=r'^"empty\.txt" is empty'):
        sanitise("empty.txt", b"")


def test_file_at_the_limit_is_accepted_and_one_byte_over_is_rejected() -> None:
    assert sanitise("a.txt", b"x" * (2 * MB), max_bytes=2 * MB).data == b"x" * (2 * MB)
    with pytest.raises(AttachmentError) as caught:
        sanitise("a.txt", b"x" * (2 * MB + 1), max_bytes=2 * MB)
    assert str(caught.value) == '"a.txt" is too large. Each attachment can be up to 2 MB.'


def test_size_limit_is_checked_before_the_content_is_parsed() -> None:
    with pytest.raises(AttachmentError, match=r"up to 0\.5 MB"):
        sanitise("scan.pdf", b"%PDF-" + b"\0" * MB, max_bytes=MB // 2)


def test_max_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError):
        sanitise("a.txt", b"x", max_bytes=0)


# --- filenames -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\jo\\Desktop\\notes.txt", "notes.txt"),
        ("/var/tmp/../notes.txt", "notes.txt"),
        ("no\x00tes\x1b[0m\r\n.txt", "notes[0m.txt"),
        ("invoice\u202etxt.exe", "invoicetxt.txt"),
        ("zero\u200bwidth.txt", "zerowidth.txt"),
        ("  .hidden.txt  ", "hidden.txt"),
        ("trailing dots...", "trailing dots.txt"),
        ("", "attachment.txt"),
        ("../", "attachment.txt"),
        ("...", "attachment.txt"),
        (".txt", "txt.txt"),
        ("Dr. Smith notes", "Dr. Smith notes.txt"),
        ("minutes.v2", "minutes.txt"),
        ("cafe\u0301.txt", "caf\u00e9.txt"),
    ],
)
def test_filename_is_reduced_to_a_safe_display_name(given: str, expected: str) -> None:
    assert sanitise(given, b"words").filename == expected


def test_long_filename_is_cut_to_the_limit_keeping_the_extension() -> None:
    name = sanitise("a" * 300 + ".txt", b"words").filename
    assert len(name) == MAX_NAME_CHARS == 120
    assert name == "a" * 116 + ".txt"


def test_long_filename_without_extension_gets_one_within_the_limit() -> None:
    name = sanitise("\u00e9" * 500, jpeg_bytes()).filename
    assert name == "\u00e9" * 116 + ".jpg"


def test_matching_extension_spelling_is_kept() -> None:
    assert sanitise("Photo.JPEG", jpeg_bytes()).filename == "Photo.JPEG"
    assert sanitise("scan.PDF", simple_pdf()).filename == "scan.PDF"


def test_error_names_the_file_without_its_path_or_control_characters() -> None:
    with pytest.raises(AttachmentError) as caught:
        sanitise("../../uploads/evil\x07.pdf", zip_bytes())
    assert str(caught.value) == f'"evil.pdf" {UNSUPPORTED}'


# --- JPEG ------------------------------------------------------------------------------------


def test_jpeg_loses_exif_gps_xmp_comment_and_icc() -> None:
    original = jpeg_bytes(
        exif=camera_exif(),
        xmp=XMP_PACKET % b"CANARY_XMP_CREATOR",
        comment=b"CANARY_COMMENT",
        icc_profile=srgb_profile(),
    )
    result = sanitise("IMG_0001.jpg", original)

    assert_canaries(
        original,
        result.data,
        b"CANARY_MAKE",
        b"CANARY_MODEL",
        b"CANARY_GPS_AREA",
        b"CANARY_XMP_CREATOR",
        b"CANARY_COMMENT",
        b"Exif\x00\x00",
        b"ICC_PROFILE",
    )
    assert sorted(result.removed) == sorted([EXIF_GPS, XMP, COMMENT, ICC])
    cleaned = Image.open(io.BytesIO(result.data))
    assert not cleaned.getexif()
    assert not {"exif", "xmp", "comment", "icc_profile"} & cleaned.info.keys()


def test_jpeg_pixels_survive_at_the_same_size() -> None:
    result = sanitise("photo.jpg", jpeg_bytes(exif=camera_exif()))
    cleaned = Image.open(io.BytesIO(result.data))
    assert (cleaned.format, cleaned.size) == ("JPEG", (64, 32))
    assert_close(cleaned.convert("RGB").getpixel((8, 16)), (255, 0, 0))
    assert_close(cleaned.convert("RGB").getpixel((56, 16)), (0, 0, 255))


def test_jpeg_without_gps_reports_camera_details_only() -> None:
    result = sanitise("photo.jpg", jpeg_bytes(exif=camera_exif(gps=False)))
    assert result.removed == (EXIF,)
    assert b"CANARY_MAKE" not in result.data


def test_jpeg_without_metadata_reports_nothing_removed() -> None:
    assert sanitise("photo.jpg", jpeg_bytes()).removed == ()


def test_jpeg_orientation_is_applied_before_exif_is_dropped() -> None:
    # Orientation 6: the camera was turned; viewers rotate 90° clockwise to display it.
    original = jpeg_bytes(exif=camera_exif(gps=False, orientation=6))
    cleaned = Image.open(io.BytesIO(sanitise("photo.jpg", original).data)).convert("RGB")
    assert cleaned.size == (32, 64)
    assert_close(cleaned.getpixel((16, 8)), (255, 0, 0))  # the red left half is now on top
    assert_close(cleaned.getpixel((16, 56)), (0, 0, 255))


def test_jpeg_with_malformed_exif_is_still_turned_upright_and_cleaned() -> None:
    original = with_jpeg_segment(jpeg_bytes(), 0xE1, exif_with_broken_subdirectory())
    with pytest.warns(UserWarning, match="Corrupt EXIF"):  # why exif_transpose is not used
        ImageOps.exif_transpose(Image.open(io.BytesIO(original)))
    result = sanitise("photo.jpg", original)  # any warning here fails: filterwarnings = error
    assert_canaries(original, result.data, b"CANARY_MAKE")
    assert result.removed == (EXIF,)
    cleaned = Image.open(io.BytesIO(result.data)).convert("RGB")
    assert cleaned.size == (32, 64)
    assert_close(cleaned.getpixel((16, 8)), (255, 0, 0))


def test_jpeg_photoshop_and_unknown_segments_are_dropped_and_reported() -> None:
    original = with_jpeg_segment(
        with_jpeg_segment(jpeg_bytes(), 0xED, b"Photoshop 3.0\x00CANARY_IPTC_CAPTION"),
        0xEB,
        b"JP\x00\x00CANARY_C2PA_MANIFEST",
    )
    result = sanitise("photo.jpg", original)
    assert_canaries(original, result.data, b"CANARY_IPTC_CAPTION", b"CANARY_C2PA_MANIFEST")
    assert sorted(result.removed) == sorted([IPTC, OTHER])


def assert_close(actual: object, expected: tuple[int, ...], tolerance: int = 12) -> None:
    assert isinstance(actual, tuple)
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), actual


# --- PNG -------------------------------------------------------------------------------------


def png_with_everything() -> bytes:
    info = PngInfo()
    info.add_text("Author", "CANARY_PNG_AUTHOR")
    info.add_itxt("Description", "CANARY_PNG_ITXT")
    info.add_text("Comment", "CANARY_PNG_ZTXT", zip=True)
    info.add_itxt("XML:com.adobe.xmp", (XMP_PACKET % b"CANARY_PNG_XMP").decode())
    info.add(b"tIME", struct.pack(">HBBBBB", 2024, 3, 1, 9, 30, 0))
    info.add(b"prVt", b"CANARY_PRIVATE_CHUNK")
    return png_bytes(pnginfo=info, exif=camera_exif(), icc_profile=srgb_profile())


def test_png_loses_every_text_chunk_exif_icc_and_private_chunk() -> None:
    original = png_with_everything()
    result = sanitise("screenshot.png", original)
    assert_canaries(
        original,
        result.data,
        b"CANARY_PNG_AUTHOR",
        b"CANARY_PNG_ITXT",
        b"CANARY_PNG_XMP",
        b"CANARY_MAKE",
        b"CANARY_GPS_AREA",
        b"CANARY_PRIVATE_CHUNK",
    )
    # The zTXt canary is compressed, so check by chunk type that no text survived.
    assert {b"zTXt", b"tIME", b"eXIf", b"iCCP"} <= set(png_chunk_types(original))
    assert set(png_chunk_types(result.data)) <= {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
    assert sorted(result.removed) == sorted([PNG_TEXT, XMP, PNG_TIME, OTHER, EXIF_GPS, ICC])


def test_png_pixels_are_identical_after_cleaning() -> None:
    source = two_colour_image((50, 30), "RGBA")
    source.putpixel((3, 4), (1, 2, 3, 4))
    cleaned = Image.open(io.BytesIO(sanitise("a.png", png_bytes(source)).data))
    assert (cleaned.mode, cleaned.size) == ("RGBA", (50, 30))
    assert cleaned.tobytes() == source.tobytes()


def test_palette_png_keeps_its_transparency() -> None:
    source = Image.new("P", (8, 8), 0)
    source.putpalette([255, 255, 255, 200, 0, 0])
    source.putpixel((2, 2), 1)
    cleaned = Image.open(io.BytesIO(sanitise("a.png", png_bytes(source, transparency=0)).data))
    assert cleaned.info.get("transparency") == 0
    assert cleaned.convert("RGBA").getpixel((0, 0))[3] == 0
    assert cleaned.convert("RGBA").getpixel((2, 2)) == (200, 0, 0, 255)


def test_png_without_metadata_reports_nothing_removed() -> None:
    assert sanitise("a.png", png_bytes()).removed == ()


# --- image safety ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height"),
    [
        pytest.param(8000, 8000, id="over-our-40MP-limit"),
        pytest.param(10_000, 10_000, id="over-pillow-warning"),
        pytest.param(20_000, 20_000, id="over-pillow-error"),
    ],
)
def test_decompression_bomb_is_rejected_before_decoding(width: int, height: int) -> None:
    with pytest.raises(AttachmentError, match="too large an image"):
        sanitise("bomb.png", png_header_only(width, height))


def test_bomb_is_rejected_even_when_pillow_warnings_are_ignored() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(AttachmentError, match=r"10000 × 10000 pixels"):
            sanitise("bomb.png", png_header_only(10_000, 10_000))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\xff\xd8\xff\xe0" + b"\x00\x10garbage" * 20, id="jpeg-garbage"),
        pytest.param(jpeg_bytes()[:200], id="jpeg-truncated"),
        pytest.param(png_bytes()[:60], id="png-truncated"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, id="png-garbage"),
    ],
)
def test_corrupt_image_is_rejected(data: bytes) -> None:
    with pytest.raises(AttachmentError, match=r"^\"broken\.img\" looks damaged"):
        sanitise("broken.img", data)


def test_a_7000_by_7000_png_is_refused_from_its_header_without_being_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The file: 156 KiB on the wire, 49 megapixels (1.3–3 s and ~360 MB to decode).
    small_file = png_bytes(Image.new("L", (7000, 7000)))
    assert len(small_file) < 200 * 1024
    decoded: list[object] = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(
        ImageFile.ImageFile, "load", lambda self: decoded.append(self) or real_load(self)
    )
    with pytest.raises(AttachmentError, match=r"7000 × 7000 pixels"):
        sanitise("huge.png", small_file)
    assert decoded == []
    # Control: the spy sees a decode when one happens.
    sanitise("small.png", png_bytes())
    assert decoded


def test_the_pixel_cap_is_the_one_passed_in() -> None:
    image = png_bytes(two_colour_image((100, 100)))
    assert sanitise_attachment("a.png", image, max_bytes=LIMIT, max_image_pixels=10_000)
    with pytest.raises(AttachmentError, match=r"100 × 100 pixels"):
        sanitise_attachment("a.png", image, max_bytes=LIMIT, max_image_pixels=9_999)


def office_document(kind: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        if kind == "odt":
            archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        else:
            archive.writestr("[Content_Types].xml", "<Types/>")
            archive.writestr("word/document.xml", "<w:document/>")
    return out.getvalue()


@pytest.mark.parametrize("kind", ["docx", "odt"])
def test_office_documents_are_refused_with_what_to_do_instead(kind: str) -> None:
    with pytest.raises(AttachmentError) as caught:
        sanitise(f"statement.{kind}", office_document(kind))
    assert str(caught.value).startswith(f'"statement.{kind}" is an Office document')
    assert "save it as a PDF" in str(caught.value)


def test_the_notice_says_what_was_removed_or_that_nothing_was() -> None:
    assert sanitise("a.png", png_bytes()).notice == "nothing hidden needed removing."
    photo = sanitise("a.jpg", jpeg_bytes(exif=camera_exif(gps=False)))
    assert photo.notice == f"we removed {EXIF}."
