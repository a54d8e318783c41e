"""Argon2id key derivation with bounded concurrency.

Each derivation takes ``memory_kib`` of RAM on purpose. A semaphore caps how many run at
once in this process, so a burst of submissions or sign-ins queues instead of exhausting
memory: peak Argon2 memory is at most ``max_concurrency × memory_kib``.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw

SALT_BYTES = 16
_lock = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id cost. The default is RFC 9106's second recommended profile."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 4
    #: how many derivations may run at once in one process
    max_concurrency: int = 2


def new_salt() -> bytes:
    """A fresh 128-bit salt."""
    return secrets.token_bytes(SALT_BYTES)


def _semaphore(limit: int) -> threading.BoundedSemaphore:
    with _lock:
        if limit not in _slots:
            _slots[limit] = threading.BoundedSemaphore(limit)
        return _slots[limit]


def derive_key(secret: bytes, salt: bytes, params: Argon2Params) -> bytes:
    """Derive a 256-bit key from a password or receipt with Argon2id."""
    if len(salt) < SALT_BYTES:
        raise ValueError("salt too short")
    with _semaphore(max(1, params.max_concurrency)):
        return hash_secret_raw(
            secret=secret,
            salt=salt,
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=32,
            type=Type.ID,
        )
