"""Reporter receipts: format, tolerant normalisation, blind index, entropy."""

from __future__ import annotations

import hashlib
import hmac
import string
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speakup.crypto.receipt import (
    ALPHABET,
    LENGTH,
    blind_index,
    format_receipt,
    generate_receipt,
    normalise_receipt,
)

PEPPER = b"p" * 32
OTHER_PEPPER = b"q" * 32

canonical = st.text(alphabet=ALPHABET, min_size=LENGTH, max_size=LENGTH)


def test_alphabet_is_crockford_base32() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 32
    assert LENGTH == 16  # 16 × 5 = 80 bits, DESIGN §4's minimum
    for excluded in "ILOU":
        assert excluded not in ALPHABET


def test_generated_receipt_shape() -> None:
    for _ in range(200):
        receipt = generate_receipt()
        groups = receipt.split("-")
        assert len(groups) == 4
        assert all(len(g) == 4 for g in groups)
        assert all(ch in ALPHABET for g in groups for ch in g)
        assert len(receipt) == 19


def test_generated_receipt_normalises_to_itself() -> None:
    for _ in range(200):
        receipt = generate_receipt()
        normalised = normalise_receipt(receipt)
        assert normalised == receipt.replace("-", "")
        assert normalised is not None
        assert format_receipt(normalised) == receipt
        assert normalise_receipt(normalised) == normalised


@given(raw=canonical)
def test_canonical_is_a_fixed_point(raw: str) -> None:
    assert normalise_receipt(raw) == raw
    assert normalise_receipt(format_receipt(raw)) == raw


_LOOKALIKE_VARIANTS = {"0": "0oO", "1": "1iIlL"}


@st.composite
def typed_variants(draw: st.DrawFn) -> tuple[str, str]:
    """A canonical receipt and a sloppy but valid way a person might type it."""
    raw = draw(canonical)
    out: list[str] = []
    separators = st.text(alphabet=" -\t", max_size=2)
    out.append(draw(separators))
    for ch in raw:
        variants = _LOOKALIKE_VARIANTS.get(ch, ch + ch.lower())
        out.append(draw(st.sampled_from(variants)))
        out.append(draw(separators))
    typed = "".join(out)
    assert len(typed) <= 64  # at most 2 + 16 × 3 characters
    return raw, typed


@given(pair=typed_variants())
def test_normalisation_is_tolerant(pair: tuple[str, str]) -> None:
    raw, typed = pair
    assert normalise_receipt(typed) == raw


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("7k3m-q9tx-abcd-ef01", "7K3MQ9TXABCDEF01"),
        ("7K3M Q9TX ABCD EF01", "7K3MQ9TXABCDEF01"),
        ("  7K3MQ9TXABCDEF01  ", "7K3MQ9TXABCDEF01"),
        ("7K3M--Q9TX - ABCD\tEF01\n", "7K3MQ9TXABCDEF01"),
        ("7K3M_Q9TX.ABCD.EF01", "7K3MQ9TXABCDEF01"),
        ("OOOO-IIII-LLLL-oil0", "0000111111110110"),
        ("o1l1-i0O0-0000-0000", "0111100000000000"),
    ],
)
def test_normalisation_examples(typed: str, expected: str) -> None:
    assert normalise_receipt(typed) == expected


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "   ",
        "----",
        "7K3M-Q9TX-ABCD",  # too short
        "7K3M-Q9TX-ABCD-EF0",  # one short
        "7K3M-Q9TX-ABCD-EF012",  # one too many
        "7K3M-Q9TX-ABCD-EFU1",  # U is not in the alphabet
        "7K3M-Q9TX-ABCD-EF!1",
        "7K3M/Q9TX/ABCD/EF01",
        "7K3M-Q9TX-ABCD-EF0١",  # Arabic-Indic digit one
        "7K3M-Q9TX-ABCD-EF0\x00",
        "7K3MQ9TXABCDEF01" + " " * 49,  # over the 64-character input limit
        "x" * 10_000,
    ],
)
def test_garbage_returns_none(garbage: str) -> None:
    assert normalise_receipt(garbage) is None


@pytest.mark.parametrize("not_text", [None, b"7K3MQ9TXABCDEF01", 12345, ["7K3MQ9TXABCDEF01"]])
def test_non_string_returns_none(not_text: object) -> None:
    assert normalise_receipt(not_text) is None  # type: ignore[arg-type]


@given(text=st.text(max_size=100))
def test_normalise_never_raises_and_output_is_canonical(text: str) -> None:
    result = normalise_receipt(text)
    if result is not None:
        assert len(result) == LENGTH
        assert all(ch in ALPHABET for ch in result)
        assert normalise_receipt(result) == result


@given(text=st.text(alphabet=string.ascii_letters + string.digits + " -", max_size=40))
def test_normalise_accepts_exactly_the_valid_ascii_inputs(text: str) -> None:
    stripped = text.replace(" ", "").replace("-", "").upper()
    stripped = stripped.replace("O", "0").replace("I", "1").replace("L", "1")
    valid = len(stripped) == LENGTH and all(ch in ALPHABET for ch in stripped)
    assert normalise_receipt(text) == (stripped if valid else None)


# --- blind index --------------------------------------------------------------------------


@given(raw=canonical)
def test_blind_index_is_hmac_sha256(raw: str) -> None:
    index = blind_index(PEPPER, raw)
    assert len(index) == 32
    assert index == hmac.new(PEPPER, raw.encode(), hashlib.sha256).digest()
    assert blind_index(PEPPER, raw) == index


@given(raw=canonical)
def test_blind_index_differs_per_pepper(raw: str) -> None:
    assert blind_index(PEPPER, raw) != blind_index(OTHER_PEPPER, raw)


@given(a=canonical, b=canonical)
def test_blind_index_differs_per_receipt(a: str, b: str) -> None:
    assert (blind_index(PEPPER, a) == blind_index(PEPPER, b)) == (a == b)


@given(pair=typed_variants())
def test_sloppy_typing_finds_the_same_index(pair: tuple[str, str]) -> None:
    raw, typed = pair
    normalised = normalise_receipt(typed)
    assert normalised is not None
    assert blind_index(PEPPER, normalised) == blind_index(PEPPER, raw)


@pytest.mark.parametrize("length", [0, 1, 16, 31])
def test_blind_index_rejects_short_pepper(length: int) -> None:
    with pytest.raises(ValueError):
        blind_index(b"p" * length, "7K3MQ9TXABCDEF01")


def test_blind_index_accepts_long_pepper() -> None:
    assert len(blind_index(b"p" * 64, "7K3MQ9TXABCDEF01")) == 32


# --- entropy ------------------------------------------------------------------------------


def test_receipts_are_distinct() -> None:
    receipts = [generate_receipt() for _ in range(1000)]
    assert len(set(receipts)) == 1000


def test_every_symbol_appears_in_every_position() -> None:
    # 1000 draws per position from 32 symbols: the chance that a fair generator misses one
    # symbol in one position is ~1e-12, so this catches a narrowed alphabet or a fixed position.
    raws = [generate_receipt().replace("-", "") for _ in range(1000)]
    for position in range(LENGTH):
        seen = Counter(r[position] for r in raws)
        assert set(seen) == set(ALPHABET), position
