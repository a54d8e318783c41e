"""Guardian case forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    MultipleFileField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional
from wtforms.widgets import HiddenInput

from speakup.cases.categories import (
    CONCERN_ABOUT,
    GUARDIAN_FLAGS,
    NATIONAL_ELEMENTS,
    PRIORITIES,
    RACE_EQUALITY_CODES,
)
from speakup.reporting.forms import choice_list


class ReplyForm(FlaskForm):
    """A message to the reporter."""

    body = TextAreaField(
        "Message to the reporter",
        validators=[
            DataRequired("Enter a message"),
            Length(max=20000, message="Messages must be 20,000 characters or fewer"),
        ],
    )
    attachments = MultipleFileField("Attach files (optional)")


class VersionForm(FlaskForm):
    """A POST that acts on the case version the guardian saw."""

    version = IntegerField(widget=HiddenInput(), validators=[InputRequired()])


class StatusForm(VersionForm):
    """Move the case to another state, optionally writing to the reporter."""

    target = HiddenField(validators=[InputRequired()])
    message = TextAreaField(
        "Message to the reporter",
        validators=[
            Optional(),
            Length(max=20000, message="Messages must be 20,000 characters or fewer"),
        ],
    )


class TriageForm(VersionForm):
    """The guardian's coding of the case."""

    elements = SelectMultipleField(
        "Elements of the concern", choices=choice_list(NATIONAL_ELEMENTS)
    )
    race_codes = SelectMultipleField(
        "Race equality codes", choices=choice_list(RACE_EQUALITY_CODES)
    )
    about = SelectMultipleField("Who the concern is about", choices=choice_list(CONCERN_ABOUT))
    flags = SelectMultipleField("Flags", choices=choice_list(GUARDIAN_FLAGS))
    priority = RadioField(
        "Priority",
        choices=choice_list(PRIORITIES),
        default="normal",
        validators=[DataRequired("Choose a priority")],
    )


class AssignForm(VersionForm):
    """Lead guardian: assign (or transfer) to a guardian of the organisation."""

    user_id = SelectField("Guardian", validators=[DataRequired("Choose a guardian")])
    transfer = BooleanField("Remove the current owner's access (transfer)")


class HandOverForm(VersionForm):
    """Hand the case to a guardian of the regional pool."""

    user_id = SelectField("Pool guardian", validators=[DataRequired("Choose a guardian")])
    remove_self = BooleanField("Remove my own access after handing over")


class RemoveReaderForm(VersionForm):
    """Remove a reader (their key is deleted and the case key rotated)."""

    user_id = SelectField("Reader to remove", validators=[DataRequired("Choose a reader")])


class RestoreReaderForm(FlaskForm):
    """Restore a reset colleague's access to the case."""

    user_id = StringField("Person", validators=[DataRequired("Choose a person")])
