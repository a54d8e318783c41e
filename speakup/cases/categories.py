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
