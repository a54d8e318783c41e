"""Guardian case forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import MultipleFileField, TextAreaField
from wtforms.validators import DataRequired, Length


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
