"""Decide what a reporter's attachment really is and strip what could identify them.

DESIGN §3 promise 2: attachment metadata is removed before storage. A photo's EXIF can carry
the phone model and the GPS position of the ward it was taken on; a PDF's properties and XMP
carry the author's name and the organisation's software. Everything here works on bytes in
memory — nothing is written to disk, because an unencrypted attachment must never touch it
(DESIGN §3.1). No Flask: the reporting service calls :func:`sanitise_attachment` and shows an
:class:`AttachmentError`'s message to the reporter as it is.
"""

from __future__ import annotations

import io
import re
import struct
import unicodedata
from dataclasses import dataclass

import filetype
from filetype.types.document import Doc, Docx, Odp, Ods, Odt, Ppt, Pptx, Xls, Xlsx
from filetype.types.image import Jpeg, Png
from PIL import ExifTags, Image

from speakup.reporting.pdf_rebuild import (
    REASON_DAMAGED,
    REASON_LOCKED,
    REASON_NO_PAGES,
    REASON_TOO_MANY_PAGES,
    RenderError,
    RenderLimits,
    rebuild_pdf,
)

PDF, JPEG, PNG, TEXT = "application/pdf", "image/jpeg", "image/png", "text/plain"
#: Canonical extension for each type, and the spellings a reporter may keep.
_EXTENSIONS = {PDF: ("pdf",), JPEG: ("jpg", "jpeg", "jpe"), PNG: ("png",), TEXT: ("txt",)}
MAX_NAME_CHARS = 120
_IMAGE_MATCHERS = (Jpeg(), Png())  # Png also matches animated PNG; Pillow keeps frame one
#: Below Pillow's own 89-megapixel warning: 40 MP covers any phone camera, and decoding it
#: needs at most ~160 MB. Checked from the header before any pixel is decoded; the
#: application passes ``[attachments] max_image_megapixels`` instead.
MAX_IMAGE_PIXELS = 40_000_000

_UNSUPPORTED = "{name} can't be attached. You can attach PDF, JPEG, PNG or plain text files."
#: Office documents are refused rather than converted: a converter (LibreOffice) is several
#: hundred megabytes of code parsing hostile input and works on files on disk, where an
#: unencrypted report must never be. The reporter is told what to do instead.
_OFFICE_MATCHERS = (Doc(), Docx(), Odt(), Xls(), Xlsx(), Ods(), Ppt(), Pptx(), Odp())
_OFFICE = (
    "{name} is an Office document, which can't be attached. Please save it as a PDF "
    "(in Word or LibreOffice: File, then Save as or Export as PDF) and attach the PDF."
)
# C0/C1 control characters except tab, newline, form feed and carriage return.
_FORBIDDEN_TEXT_CHARS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
# What browsers sniff as HTML or XML (WHATWG MIME Sniffing §7.1): a guardian's browser must
# never be tempted to render a "text" attachment as a page, so such text is refused.
_MARKUP_START = re.compile(
    rb"[\t\n\x0c\r ]*(?:<\?xml|<svg|<!--|"
    rb"<(?:!doctype html|html|head|script|iframe|h1|div|font|table|a|style|title|b|body|br|p)"
    rb"[ >])",
    re.IGNORECASE,
)
#: What Pillow raises for malformed input (the set its own fuzzing harness accepts).
_PIL_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    NotImplementedError,
    OverflowError,
)


class AttachmentError(Exception):
    """An attachment was refused; the message is plain English, safe to show the reporter."""


@dataclass(frozen=True)
class SanitisedFile:
    """An attachment after type detection and metadata removal, ready to be sealed."""

    filename: str  #: display name only: no path, no control characters, honest extension
    content_type: str  #: one of PDF, JPEG, PNG, TEXT
    data: bytes  #: the cleaned bytes
    removed: tuple[str, ...]  #: what was found and removed, in words the reporter understands

    @property
    def notice(self) -> str:
        """The sentence shown after the file's name: see :func:`cleaning_notice`."""
        return cleaning_notice(self.removed)


def sanitise_attachment(
    filename: str,
    data: bytes,
    *,
    max_bytes: int,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    pdf_limits: RenderLimits | None = None,
) -> SanitisedFile:
    """Detect the type from ``data`` (never the name), strip metadata, return the clean file.

    Images are re-encoded from their pixels; PDFs are rebuilt from images of their pages.
    Raises :class:`AttachmentError` for empty, oversized, unsupported, corrupt, too costly or
    password-protected files.
    """
    if max_bytes <= 0:
        raise ValueError("max_bytes must be positive")
    name = _base_name(filename)
    shown = f'"{name[:MAX_NAME_CHARS]}"' if name else "This file"
    if not data:
        raise AttachmentError(f"{shown} is empty, so it can't be attached.")
    if len(data) > max_bytes:
        raise AttachmentError(
            f"{shown} is too large. Each attachment can be up to {_megabytes(max_bytes)} MB."
        )
    content_type = _detect_type(data)
    if content_type is None:
        if filetype.match(data, matchers=_OFFICE_MATCHERS) is not None:
            raise AttachmentError(_OFFICE.format(name=shown))
        raise AttachmentError(_UNSUPPORTED.format(name=shown))
    if content_type == PDF:
        cleaned, removed = _clean_pdf(data, shown, pdf_limits or RenderLimits())
    elif content_type == TEXT:
        cleaned, removed = data, ()  # text carries no hidden metadata; keep the reporter's bytes
    else:
        cleaned, removed = _clean_image(data, content_type, shown, max_image_pixels)
    return SanitisedFile(_with_extension(name, content_type), content_type, cleaned, removed)


# --- type detection and names -------------------------------------------------------------


def _detect_type(data: bytes) -> str | None:
    if data.startswith(b"%PDF-"):
        return PDF
    kind = filetype.match(data, matchers=_IMAGE_MATCHERS)
    if kind is not None:
        return str(kind.mime)
    return TEXT if _is_plain_text(data) else None


def _is_plain_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return not _FORBIDDEN_TEXT_CHARS.search(text) and not _MARKUP_START.match(
        data.removeprefix(b"\xef\xbb\xbf")
    )


def _base_name(filename: str) -> str:
    """The last path component, without control or formatting characters (e.g. RTL override)."""
    name = unicodedata.normalize("NFC", filename).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    # Leading dots would hide the file on a guardian's machine; Windows drops trailing ones.
    return re.sub(r"^[\s.]+|[\s.]+$", "", name)


def _with_extension(name: str, content_type: str) -> str:
    """Make the extension tell the truth about the content, and cap the length."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not re.fullmatch(r"[A-Za-z0-9]{1,5}", ext):
        stem, ext = name, ""
    allowed = _EXTENSIONS[content_type]
    if ext.lower() not in allowed:
        ext = allowed[0]
    stem = stem.rstrip(" .") or "attachment"
    return f"{stem[: MAX_NAME_CHARS - len(ext) - 1].rstrip(' .') or 'attachment'}.{ext}"


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0")


# --- images ---------------------------------------------------------------------------------

_EXIF_GPS = "camera and location details (EXIF)"
_EXIF = "camera details (EXIF)"
_XMP = "editing and author details (XMP)"
_COMMENT = "comments saved in the image"
_IPTC = "captions and author details (IPTC)"
_ICC = "colour profile"
_PNG_TEXT = "text details such as author or software (PNG text chunks)"
_PNG_TIME = "the date the image was last changed"
_OTHER = "other data saved by the camera or editing software"
# PNG chunks that describe pixels only. Every other chunk is named in ``removed``.
_PIXEL_PNG_CHUNKS = set(
    b"IHDR PLTE IDAT IEND tRNS gAMA cHRM sRGB sBIT bKGD pHYs acTL fcTL fdAT".split()
)
_PNG_TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt"}
#: Text keywords ImageMagick and exiftool use to carry EXIF inside a PNG.
_EXIF_KEYWORDS = {b"Raw profile type exif", b"Raw profile type APP1"}
#: JPEG segments holding decoding parameters only (JFIF density, Adobe colour transform).
_DECODING_SEGMENTS = {("APP0", b"JFIF\0"), ("APP14", b"Adobe")}
#: EXIF orientation → the transposition that shows the picture upright, as in
#: ``ImageOps.exif_transpose``. That function is not used because it re-serialises the whole
#: EXIF block we are about to drop, which on real photos with a malformed sub-directory makes
#: Pillow warn (an error under ``filterwarnings = error``); only the base directory is read here.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _clean_image(
    data: bytes, content_type: str, shown: str, max_pixels: int
) -> tuple[bytes, tuple[str, ...]]:
    """Re-encode from the pixels alone, keeping the EXIF orientation by applying it."""
    fmt = "JPEG" if content_type == JPEG else "PNG"
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as image:
            width, height = image.size  # from the header: nothing is decoded yet
            if width * height > max_pixels:
                raise AttachmentError(
                    f"{shown} is too large an image ({width} × {height} pixels). "
                    "Please attach a smaller copy."
                )
            image.load()
            found = _jpeg_metadata(image) if fmt == "JPEG" else _png_metadata(data)
            exif = image.getexif()  # the base directory only; sub-directories stay unparsed
            has_gps = ExifTags.Base.GPSInfo in exif
            orientation = exif.get(ExifTags.Base.Orientation)
            turn = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
            upright = image.transpose(turn) if turn else image.copy()
        # JPEG comments and PNG colour profiles are copied from ``info`` on save; keep only
        # transparency, which is part of the picture rather than about it.
        transparency = upright.info.get("transparency")
        upright.info = {} if transparency is None else {"transparency": transparency}
        out = io.BytesIO()
        if fmt == "JPEG":
            upright.save(out, "JPEG", quality=90)
        else:
            upright.save(out, "PNG", optimize=True)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise AttachmentError(f"{shown} is too large an image to open safely.") from exc
    except (*_PIL_ERRORS, UserWarning) as exc:
        # UserWarning: Pillow warns about malformed metadata; raised only when warnings are
        # errors (as in the tests), otherwise it is printed and the metadata is dropped anyway.
        raise AttachmentError(f"{shown} looks damaged and can't be opened as an image.") from exc
    removed = [_EXIF_GPS if label == _EXIF and has_gps else label for label in found]
    return out.getvalue(), tuple(dict.fromkeys(removed))


def _jpeg_metadata(image: Image.Image) -> list[str]:
    """Name each APPn and comment segment; re-encoding writes none of them."""
    found = []
    for marker, payload in getattr(image, "applist", []):
        if (marker, payload[:5]) in _DECODING_SEGMENTS:
            continue
        if marker == "APP1" and payload.startswith(b"Exif"):
            found.append(_EXIF)
        elif marker == "APP1" and payload.startswith(b"http://ns.adobe.com/"):
            found.append(_XMP)
        elif marker == "APP2" and payload.startswith(b"ICC_PROFILE"):
            found.append(_ICC)
        elif marker == "APP13" and payload.startswith(b"Photoshop 3.0"):
            found.append(_IPTC)
        elif marker == "COM":
            found.append(_COMMENT)
        else:
            found.append(_OTHER)
    return found


def _png_metadata(data: bytes) -> list[str]:
    """Name each non-pixel chunk: Pillow keeps neither tIME nor unknown chunks in ``info``."""
    found, pos = [], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        keyword = data[pos + 8 : pos + 8 + min(length, 80)].split(b"\0", 1)[0]
        if kind == b"eXIf" or (kind in _PNG_TEXT_CHUNKS and keyword in _EXIF_KEYWORDS):
            found.append(_EXIF)
        elif kind in _PNG_TEXT_CHUNKS and keyword == b"XML:com.adobe.xmp":
            found.append(_XMP)
        elif kind in _PNG_TEXT_CHUNKS:
            found.append(_PNG_TEXT)
        elif kind == b"iCCP":
            found.append(_ICC)
        elif kind == b"tIME":
            found.append(_PNG_TIME)
        elif kind not in _PIXEL_PNG_CHUNKS:
            found.append(_OTHER)
        pos += 12 + length
    return found


# --- PDF ------------------------------------------------------------------------------------

#: What a rebuilt PDF lost, recorded in ``removed``: true whatever the original held, unlike a
#: list of what was found (a filter's list is only as good as the keys it knew to look for).
PDF_REBUILT = "everything but images of its pages"
_PDF_NOTICE = (
    "we rebuilt it from images of its pages, so links, scripts, forms, attached files and "
    "hidden details such as the author are not kept, and its text can no longer be selected "
    "or searched."
)


def cleaning_notice(removed: tuple[str, ...]) -> str:
    """What the reporter (and later the guardian) is told about one file, after its name."""
    if PDF_REBUILT in removed:
        return _PDF_NOTICE
    if removed:
        return f"we removed {', '.join(removed)}."
    return "nothing hidden needed removing."


def _clean_pdf(data: bytes, shown: str, limits: RenderLimits) -> tuple[bytes, tuple[str, ...]]:
    """Render every page in a limited child process and build a new PDF from the images."""
    try:
        return rebuild_pdf(data, limits), (PDF_REBUILT,)
    except RenderError as exc:
        raise AttachmentError(_pdf_refusal(exc.reason, shown, limits)) from exc


def _pdf_refusal(reason: str, shown: str, limits: RenderLimits) -> str:
    if reason == REASON_LOCKED:
        return f"{shown} is password-protected. Please attach a copy without a password."
    if reason == REASON_NO_PAGES:
        return f"{shown} has no pages, so there is nothing to attach."
    if reason == REASON_TOO_MANY_PAGES:
        return (
            f"{shown} has more than {limits.max_pages} pages. Please attach up to "
            f"{limits.max_pages} pages per file, for example by saving the pages that matter "
            "as a separate PDF."
        )
    if reason == REASON_DAMAGED:
        return f"{shown} looks damaged and can't be opened as a PDF."
    return (
        f"{shown} took too long or needed too much memory to open safely. Please attach a "
        "shorter or simpler copy, for example the pages that matter saved as a separate PDF."
    )
