"""Events the accounts feature publishes, so features above it can act without accounts
importing them (layer order: features depend one way)."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: a reader completed sign-in; receivers get ``user`` and ``private_key`` (case custody
#: re-seals recovery copies in the reader's own request)
staff_signed_in = _signals.signal("staff-signed-in")
