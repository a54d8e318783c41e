"""Administrator and account forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import DataRequired

from speakup.accounts.forms import confirm_rules, new_password_rules


class ChangePasswordForm(FlaskForm):
    """A user changes their own password."""

    current = PasswordField(
        "Current password", validators=[DataRequired("Enter your current password")]
    )
    new = PasswordField("New password", validators=new_password_rules())
    confirm = PasswordField("New password again", validators=confirm_rules("new"))
