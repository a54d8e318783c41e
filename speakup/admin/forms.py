"""Administrator and account forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, Length


class ChangePasswordForm(FlaskForm):
    """A user changes their own password."""

    current = PasswordField(
        "Current password", validators=[DataRequired("Enter your current password")]
    )
    new = PasswordField(
        "New password",
        validators=[
            DataRequired("Enter a new password"),
            Length(min=12, max=1024, message="Passwords must be at least 12 characters"),
        ],
    )
    confirm = PasswordField(
        "New password again",
        validators=[
            DataRequired("Enter the new password again"),
            EqualTo("new", "The passwords do not match"),
        ],
    )
