"""Fixed vocabularies shared by the reporter form and the guardian views (DESIGN §6)."""

from __future__ import annotations

#: race-equality codes: (code, label shown to reporters and guardians)
RACE_EQUALITY_CODES: list[tuple[str, str]] = [
    ("racism_colleague", "Racism from a colleague"),
    ("racism_manager", "Racism from a manager or leader"),
    ("racism_public", "Racism from patients or the public"),
    ("microaggressions", "Microaggressions"),
    ("disciplinary_bias", "Bias in disciplinary action (including referral to a regulator)"),
    ("recruitment_bias", "Bias in recruitment"),
    ("promotion_bias", "Bias in promotion or acting-up"),
    ("training_access", "Unfair access to training or development"),
    ("work_allocation", "Unfair allocation of work, shifts or rotas"),
    ("wellbeing_risk_assessment", "Wellbeing risk assessment not done or not acted on"),
    ("international_recruits", "Treatment of internationally recruited staff"),
    ("detriment", "Being treated badly after speaking up"),
    ("other_protected", "Another protected characteristic (for example disability or religion)"),
    ("previous_not_acted_on", "A concern I raised before was not acted on"),
]
RACE_EQUALITY_LABELS = dict(RACE_EQUALITY_CODES)

#: national FTSU "elements" a case may have (several may apply)
NATIONAL_ELEMENTS: list[tuple[str, str]] = [
    ("patient_safety_quality", "Patient safety or quality"),
    ("bullying_harassment", "Bullying or harassment"),
    ("inappropriate_attitudes", "Inappropriate attitudes or behaviours"),
    ("worker_safety_wellbeing", "Worker safety or wellbeing"),
    ("detriment", "Detriment for speaking up"),
]
NATIONAL_ELEMENT_LABELS = dict(NATIONAL_ELEMENTS)

#: who the concern is about
CONCERN_ABOUT: list[tuple[str, str]] = [
    ("peer", "A peer or colleague"),
    ("manager", "A manager"),
    ("senior_leader", "A senior leader"),
    ("patient_public", "A patient or member of the public"),
    ("process", "A process or system"),
]
CONCERN_ABOUT_LABELS = dict(CONCERN_ABOUT)

#: guardian flags
GUARDIAN_FLAGS: list[tuple[str, str]] = [
    ("protected_disclosure", "Possible protected disclosure (whistleblowing)"),
    ("protected_act", "Possible protected act (Equality Act 2010 s.27)"),
    ("safeguarding", "Safeguarding"),
    ("immediate_risk", "Immediate risk"),
]
GUARDIAN_FLAG_LABELS = dict(GUARDIAN_FLAGS)

PRIORITIES: list[tuple[str, str]] = [
    ("low", "Low"),
    ("normal", "Normal"),
    ("high", "High"),
    ("urgent", "Urgent"),
]
PRIORITY_LABELS = dict(PRIORITIES)

#: "Given your experience, would you speak up again?"
SPEAK_UP_AGAIN: list[tuple[str, str]] = [
    ("yes", "Yes"),
    ("no", "No"),
    ("maybe", "Maybe"),
    ("dont_know", "I don't know"),
]
SPEAK_UP_AGAIN_LABELS = dict(SPEAK_UP_AGAIN)
