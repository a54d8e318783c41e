"""Unbound Flask extensions, initialised in :func:`speakup.create_app`.

Kept apart from ``speakup/__init__.py`` so models and services can import ``db`` without
importing the application factory.
"""

from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from speakup.db import Base
from speakup.ratelimit import rate_limit_key

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
csrf = CSRFProtect()
login_manager = LoginManager()
#: Rate limits. The key function never stores or logs an address: see speakup.ratelimit.
limiter = Limiter(key_func=rate_limit_key, default_limits=[], headers_enabled=False)
