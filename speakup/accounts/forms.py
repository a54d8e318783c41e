"""Staff sign-in forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length


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
    password = PasswordField(
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
            EqualTo("password", "The passwords do not match"),
        ],
    )
