"""Staff sign-in forms."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from speakup.accounts.services import MIN_PASSWORD_LENGTH


def new_password_rules() -> list[Any]:
    """A new password, wherever one is chosen (enrolment, change)."""
    return [
        DataRequired("Enter a new password"),
        Length(
            min=MIN_PASSWORD_LENGTH,
            max=1024,
            message=f"Passwords must be at least {MIN_PASSWORD_LENGTH} characters",
        ),
    ]


def confirm_rules(field: str) -> list[Any]:
    """The new password typed again must match ``field``."""
    return [
        DataRequired("Enter the new password again"),
        EqualTo(field, "The passwords do not match"),
    ]


class SignInForm(FlaskForm):
    """Email and password."""

    email = EmailField(
        "Email address", validators=[DataRequired("Enter your email address"), Length(max=254)]
    )
    password = PasswordField(
        "Password", validators=[DataRequired("Enter your password"), Length(max=1024)]
    )


class CodeForm(FlaskForm):
    """The six-digit code from an authenticator app."""

    code = StringField(
        "Security code", validators=[DataRequired("Enter the 6-digit code"), Length(max=12)]
    )


class EnrolForm(FlaskForm):
    """After a reset: the one-time code from the administrator and a password of one's own."""

    email = EmailField(
        "Email address", validators=[DataRequired("Enter your email address"), Length(max=254)]
    )
    code = StringField(
        "Enrolment code",
        validators=[DataRequired("Enter the enrolment code you were given"), Length(max=64)],
    )
    password = PasswordField("New password", validators=new_password_rules())
    confirm = PasswordField("New password again", validators=confirm_rules("password"))
