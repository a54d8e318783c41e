"""Gunicorn settings for a Speakup app host: ``gunicorn -c config/gunicorn.conf.py
'speakup:create_app()'``. See docs/OPERATIONS.md. Every value can be overridden from the
environment (SPEAKUP_GUNICORN_*) so hosts of different sizes share this one file.

Memory per worker (sync workers, one request at a time each), the figure to size hosts by:

    baseline: Python + Flask + SQLAlchemy + cryptography, app loaded   ~100 MiB (measured RSS)
    Argon2id: ARGON2_MAX_CONCURRENCY 2 x ARGON2_MEMORY_KIB 64 MiB        128 MiB
    one upload in flight: request cap 60 MiB, peaking at up to ~4x while
    it is parsed, stripped of metadata and encrypted (issue 12)        <= 240 MiB
                                                                       ----------
    worst case                                                           ~470 MiB -> plan 512 MiB

So a host with W workers needs about W x 512 MiB plus the OS. A sync worker handles one
request at a time, so Argon2's cap of 2 is never reached inside one worker; the cap matters
if you switch to threads (keep threads below the database pool size, 5 + 10 overflow).
"""

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    return int(os.environ.get(f"SPEAKUP_GUNICORN_{name}", default))


# Behind the TLS proxy on the same host; the proxy terminates TLS and forwards here.
bind = os.environ.get("SPEAKUP_GUNICORN_BIND", "127.0.0.1:8000")

# Sync workers: Argon2id is CPU-bound, so more workers than cores only queue inside the
# kernel instead of in gunicorn's backlog. At least two, so one slow request never blocks all.
workers = _int("WORKERS", max(2, multiprocessing.cpu_count()))
worker_class = "sync"

# A submission with attachments (Argon2id + sanitising + encrypting 50 MiB) takes seconds,
# not minutes; past 60 s the worker is stuck and is replaced. Graceful: let requests finish
# on reload or shutdown (a reporter's Send must not be cut off).
timeout = _int("TIMEOUT", 60)
graceful_timeout = _int("GRACEFUL_TIMEOUT", 30)
keepalive = _int("KEEPALIVE", 5)

# Recycle each worker after this many requests (jitter so they do not all restart at once):
# memory a large upload left fragmented goes back to the system.
max_requests = _int("MAX_REQUESTS", 1000)
max_requests_jitter = _int("MAX_REQUESTS_JITTER", 100)

# No access log: it would record every reporter's address and path (DESIGN §3.2).
accesslog = None
errorlog = "-"
loglevel = os.environ.get("SPEAKUP_GUNICORN_LOGLEVEL", "info")

# Load the app in each worker, not the master: each gets its own database connections.
preload_app = False
