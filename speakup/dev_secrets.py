"""Create development secrets in the instance folder: ``python -m speakup.dev_secrets``.

This runs without the app (which refuses to start without its secrets). Files are created
with mode 0600 and never overwritten. Production supplies its own secrets instead.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from speakup.settings import SECRETS

INSTANCE = Path(__file__).resolve().parent.parent / "instance"


def create_dev_secrets(instance: Path = INSTANCE) -> list[Path]:
    """Create each missing secret file; return the ones created."""
    instance.mkdir(parents=True, exist_ok=True)
    created = []
    for _env, (_key, file_name, _min) in SECRETS.items():
        path = instance / file_name
        if path.exists():
            continue
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
        created.append(path)
    return created


if __name__ == "__main__":
    made = create_dev_secrets()
    for path in made:
        print(f"created development secret {path}")
    if not made:
        print("development secrets already exist")
    sys.exit(0)
