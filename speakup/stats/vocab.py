"""Vocabularies for the optional "about you" questions and how they are grouped when published.

Reporters answer in the 2021 Census ethnic groups; below region level only White / Black,
Asian and minority ethnic (BME) / not stated is ever published, and at region level only the
five high-level Census groups.
"""

from __future__ import annotations

#: (code, label, high-level Census group)
ETHNIC_GROUPS: list[tuple[str, str, str]] = [
    ("asian_indian", "Asian or Asian British: Indian", "asian"),
    ("asian_pakistani", "Asian or Asian British: Pakistani", "asian"),
    ("asian_bangladeshi", "Asian or Asian British: Bangladeshi", "asian"),
    ("asian_chinese", "Asian or Asian British: Chinese", "asian"),
    ("asian_other", "Any other Asian background", "asian"),
    ("black_african", "Black, Black British, Caribbean or African: African", "black"),
    ("black_caribbean", "Black, Black British, Caribbean or African: Caribbean", "black"),
    ("black_other", "Any other Black, Black British or Caribbean background", "black"),
    ("mixed_white_black_caribbean", "Mixed or multiple: White and Black Caribbean", "mixed"),
    ("mixed_white_black_african", "Mixed or multiple: White and Black African", "mixed"),
    ("mixed_white_asian", "Mixed or multiple: White and Asian", "mixed"),
    ("mixed_other", "Any other Mixed or multiple ethnic background", "mixed"),
    ("white_british", "White: English, Welsh, Scottish, Northern Irish or British", "white"),
    ("white_irish", "White: Irish", "white"),
    ("white_gypsy_traveller", "White: Gypsy or Irish Traveller", "white"),
    ("white_roma", "White: Roma", "white"),
    ("white_other", "Any other White background", "white"),
    ("other_arab", "Other ethnic group: Arab", "other"),
    ("other_any", "Any other ethnic group", "other"),
]
ETHNIC_GROUP_CODES = {code for code, _, _ in ETHNIC_GROUPS}
HIGH_LEVEL = {code: group for code, _, group in ETHNIC_GROUPS}
HIGH_LEVEL_LABELS = {
    "asian": "Asian or Asian British",
    "black": "Black, Black British, Caribbean or African",
    "mixed": "Mixed or multiple ethnic groups",
    "white": "White",
    "other": "Other ethnic group",
    "not_stated": "Not stated",
}
WRES_LABELS = {
    "white": "White",
    "bme": "Black, Asian and minority ethnic",
    "not_stated": "Not stated",
}

STAFF_GROUPS: list[tuple[str, str]] = [
    ("nursing_midwifery", "Nursing or midwifery"),
    ("medical_dental", "Medical or dental"),
    ("ahp", "Allied health professional"),
    ("scientific_technical", "Scientific, therapeutic or technical"),
    ("healthcare_support", "Healthcare assistant or other clinical support"),
    ("admin_clerical", "Administrative or clerical"),
    ("estates_ancillary", "Estates, facilities or ancillary"),
    ("social_care", "Social care"),
    ("management", "Management"),
    ("other", "Other"),
]
STAFF_GROUP_LABELS = dict(STAFF_GROUPS) | {"not_stated": "Not stated"}

PAY_BANDS: list[tuple[str, str]] = [
    ("band_1_4", "Agenda for Change bands 1 to 4"),
    ("band_5_7", "Agenda for Change bands 5 to 7"),
    ("band_8_9", "Agenda for Change band 8a or above"),
    ("medical", "Medical or dental pay scales"),
    ("other", "Other or not on Agenda for Change"),
]
PAY_BAND_LABELS = dict(PAY_BANDS) | {"not_stated": "Not stated"}


def wres_group(code: str | None) -> str:
    """White / BME / not stated, from a Census code (or nothing)."""
    if not code or code not in HIGH_LEVEL:
        return "not_stated"
    return "white" if HIGH_LEVEL[code] == "white" else "bme"


def high_level_group(code: str | None) -> str:
    """The five high-level Census groups, or not stated."""
    if not code or code not in HIGH_LEVEL:
        return "not_stated"
    return HIGH_LEVEL[code]
