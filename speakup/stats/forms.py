"""Forms for leaders' "you said, we did" actions and the lead guardian's sign-off."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from speakup.cases.categories import NATIONAL_ELEMENTS, RACE_EQUALITY_CODES
from speakup.reporting.forms import choice_list

ACTION_STATUSES = [
    ("planned", "Planned"),
    ("in_progress", "In progress"),
    ("done", "Done"),
    ("no_change", "Nothing changed"),
]
ACTION_STATUS_LABELS = dict(ACTION_STATUSES)
THEMES = NATIONAL_ELEMENTS + RACE_EQUALITY_CODES + [("other", "Something else")]
THEME_LABELS = dict(THEMES)


class ActionForm(FlaskForm):
    """A "you said, we did" action."""

    period = SelectField("Period it responds to", validators=[DataRequired("Choose a period")])
    theme = SelectField(
        "Theme", choices=choice_list(THEMES), validators=[DataRequired("Choose a theme")]
    )
    title = StringField(
        "What you heard",
        validators=[DataRequired("Say what you heard"), Length(max=200)],
    )
    description = TextAreaField(
        "What you did (or will do)",
        validators=[DataRequired("Say what you did"), Length(max=5000)],
    )
    status = RadioField(
        "Status",
        choices=choice_list(ACTION_STATUSES),
        default="planned",
        validators=[DataRequired("Choose a status")],
    )
    explanation = TextAreaField(
        "If nothing changed, why not?", validators=[Optional(), Length(max=5000)]
    )

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        if self.status.data == "no_change" and not (self.explanation.data or "").strip():
            self.explanation.errors = list(self.explanation.errors) + [
                "Explain why nothing changed: staff are owed a reason"
            ]
            ok = False
        return ok


class ActionStatusForm(FlaskForm):
    """Update an action's status."""

    status = RadioField(
        "Status", choices=choice_list(ACTION_STATUSES), validators=[DataRequired("Choose a status")]
    )
    explanation = TextAreaField(
        "If nothing changed, why not?", validators=[Optional(), Length(max=5000)]
    )
