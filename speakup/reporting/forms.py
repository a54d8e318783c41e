"""Reporter forms. Choices are filled per request from the database."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    HiddenField,
    MultipleFileField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from speakup.cases.categories import RACE_EQUALITY_CODES, SPEAK_UP_AGAIN
from speakup.cases.models import DisclosureMode, Route
from speakup.stats.vocab import ETHNIC_GROUPS, PAY_BANDS, STAFF_GROUPS


def choice_list(pairs: list[tuple[str, str]]) -> list[SelectChoice]:
    """WTForms choices from (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]


ROUTE_CHOICES = [
    (str(Route.ORGANISATION), "The Freedom to Speak Up guardians of that organisation"),
    (str(Route.POOL), "A guardian I choose from the regional pool"),
    (str(Route.PANEL), "The regional Race Equality and Inclusion Panel"),
]
DISCLOSURE_CHOICES = [
    (str(DisclosureMode.ANONYMOUS), "Anonymously"),
    (str(DisclosureMode.CONFIDENTIAL), "Confidentially"),
    (str(DisclosureMode.OPEN), "Openly"),
]


class ReportForm(FlaskForm):
    """The whole report, in numbered sections on one page (nothing is stored until sent)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        prefer = [("", "Prefer not to say")]
        self.ethnicity.choices = choice_list(prefer + [(c, label) for c, label, _ in ETHNIC_GROUPS])
        self.staff_group.choices = choice_list(prefer + STAFF_GROUPS)
        self.pay_band.choices = choice_list(prefer + PAY_BANDS)

    organisation = SelectField(
        "Organisation", validators=[DataRequired("Choose the organisation where it happened")]
    )
    route = RadioField(
        "Who should receive your concern?",
        choices=choice_list(ROUTE_CHOICES),
        validators=[DataRequired("Choose who should receive your concern")],
    )
    pool_guardian = RadioField("Choose a guardian", validators=[Optional()], validate_choice=False)
    excluded = SelectMultipleField("Guardians involved", coerce=str, validate_choice=False)
    what_happened = TextAreaField(
        "What happened?",
        validators=[
            DataRequired("Tell us what happened"),
            Length(max=20000, message="What happened must be 20,000 characters or fewer"),
        ],
    )
    when = SelectField("Roughly when did it happen?", validators=[Optional()])
    categories = SelectMultipleField(
        "What was it about?", choices=choice_list(RACE_EQUALITY_CODES), validators=[Optional()]
    )
    desired_outcome = TextAreaField(
        "What would you like to happen?",
        validators=[Optional(), Length(max=5000, message="This must be 5,000 characters or fewer")],
    )
    disclosure_mode = RadioField(
        "How do you want to speak up?",
        choices=choice_list(DISCLOSURE_CHOICES),
        validators=[DataRequired("Choose how you want to speak up")],
    )
    name = StringField("Your name", validators=[Optional(), Length(max=200)])
    contact = StringField(
        "How can the guardian contact you?", validators=[Optional(), Length(max=300)]
    )
    escalation_consent = RadioField(
        "May your concern be escalated to the regional panel if needed?",
        choices=choice_list([("yes", "Yes"), ("no", "No, ask me first")]),
        default="no",
        validators=[DataRequired("Choose whether your concern may be escalated")],
    )
    identity_later_consent = RadioField(
        "If your concern is passed to another guardian, may they see who you are?",
        choices=choice_list([("yes", "Yes"), ("no", "No, only the guardians I chose")]),
        default="no",
        validators=[Optional()],
    )
    attachments = MultipleFileField("Attach files (optional)")
    submission_token = HiddenField()
    # "About you": optional, for statistics only, never stored with the concern.
    ethnicity = SelectField("Ethnic group", validators=[Optional()], default="")
    staff_group = SelectField("Staff group", validators=[Optional()], default="")
    pay_band = SelectField("Pay band", validators=[Optional()], default="")

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        if self.route.data == Route.POOL and not self.pool_guardian.data:
            self.pool_guardian.errors = list(self.pool_guardian.errors) + [
                "Choose a guardian from the pool"
            ]
            ok = False
        if self.disclosure_mode.data in (DisclosureMode.CONFIDENTIAL, DisclosureMode.OPEN):
            if not (self.name.data or "").strip():
                self.name.errors = list(self.name.errors) + [
                    "Enter your name, or choose to speak up anonymously"
                ]
                ok = False
            if not (self.contact.data or "").strip():
                self.contact.errors = list(self.contact.errors) + [
                    "Enter how the guardian can contact you"
                ]
                ok = False
        return ok


class ReceiptForm(FlaskForm):
    """Follow-up sign-in."""

    receipt = StringField(
        "Your receipt",
        validators=[DataRequired("Enter your receipt"), Length(max=64)],
    )


class MessageForm(FlaskForm):
    """A message in the thread, with optional files."""

    body = TextAreaField(
        "Your message",
        validators=[
            DataRequired("Enter a message"),
            Length(max=20000, message="Messages must be 20,000 characters or fewer"),
        ],
    )
    attachments = MultipleFileField("Attach files (optional)")


class IdentityForm(FlaskForm):
    """Revealing who you are later."""

    name = StringField("Your name", validators=[DataRequired("Enter your name"), Length(max=200)])
    contact = StringField(
        "How can the guardian contact you?",
        validators=[DataRequired("Enter how the guardian can contact you"), Length(max=300)],
    )


class ConsentForm(FlaskForm):
    """Giving or withdrawing escalation consent, and (separately) identity for the panel."""

    consent = RadioField(
        "May your concern be escalated to the regional panel if needed?",
        choices=choice_list([("yes", "Yes"), ("no", "No")]),
        validators=[DataRequired("Choose yes or no")],
    )
    identity_consent = RadioField(
        "If it is escalated, may the panel know who you are?",
        choices=choice_list([("yes", "Yes"), ("no", "No")]),
        default="no",
        validators=[DataRequired("Choose yes or no")],
    )
    later_consent = RadioField(
        "If your concern is passed to another guardian, may they see who you are?",
        choices=choice_list([("yes", "Yes"), ("no", "No")]),
        default="no",
        validators=[Optional()],
    )


class SpeakUpAgainForm(FlaskForm):
    """The national question at closure."""

    answer = RadioField(
        "Given your experience, would you speak up again?",
        choices=choice_list(SPEAK_UP_AGAIN),
        validators=[DataRequired("Choose an answer")],
    )
    words = TextAreaField(
        "Anything you would like to add? (optional)",
        validators=[Optional(), Length(max=2000, message="This must be 2,000 characters or fewer")],
    )


class DetrimentForm(FlaskForm):
    """A detriment check-in reply after closure."""

    text = TextAreaField(
        "Has anything happened to you since you spoke up?",
        validators=[
            DataRequired("Tell us what has happened"),
            Length(max=20000, message="This must be 20,000 characters or fewer"),
        ],
    )


class EmptyForm(FlaskForm):
    """A CSRF-protected button."""
