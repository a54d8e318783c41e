"""Service pages for reporters: privacy notice, accessibility statement, help, and other
routes and rights. Plain content, public, in the reporter layout, loading nothing from
another origin (addresses of outside bodies are written out as text, never fetched).

Also the quick-exit destination used by every reporter page (GOV.UK "Exit this page").
"""

from __future__ import annotations

from flask import render_template
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from speakup.reporting.views import bp
from speakup.security import public_endpoint

#: Where "Exit this page" goes: an ordinary, harmless page on a well-known site. It is a
#: plain link the reporter follows, never a resource the page loads, so nothing is fetched
#: from that site unless she presses it; rel="noreferrer" and our no-referrer policy mean
#: the site is not told where she came from.
QUICK_EXIT_URL = "https://www.bbc.co.uk/weather"


def _expose_quick_exit(state: BlueprintSetupState) -> None:
    # A Jinja global rather than a context processor: it never changes per request.
    state.app.jinja_env.globals["quick_exit_url"] = QUICK_EXIT_URL


bp.record_once(_expose_quick_exit)


@bp.route("/privacy")
@public_endpoint
def privacy() -> ResponseReturnValue:
    """What is and is not kept, and who can read what."""
    return render_template("reporter/pages/privacy.html")


@bp.route("/accessibility")
@public_endpoint
def accessibility() -> ResponseReturnValue:
    """The accessibility statement."""
    return render_template("reporter/pages/accessibility.html")


@bp.route("/help")
@public_endpoint
def help_page() -> ResponseReturnValue:
    """How to follow up, and what to do about a lost receipt."""
    return render_template("reporter/pages/help.html")


@bp.route("/other-routes")
@public_endpoint
def other_routes() -> ResponseReturnValue:
    """Other places to speak up, and a plain word on legal protection."""
    return render_template("reporter/pages/other_routes.html")
