"""Staff sign-in forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length


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
