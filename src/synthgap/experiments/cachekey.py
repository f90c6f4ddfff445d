"""Model cache keys: what made a cached model (its identity, a JSON-able dict) hashed into the name of its entry."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def cache_key(identity: dict[str, Any]) -> str:
    """The first 24 hex digits of the SHA-256 of `identity` as key-sorted JSON: equal identities name one entry.

    This is the hash `ModelCache.key` applies to a from-scratch student's identity; a key changes only with what goes
    into the identity, so existing cache entries keep their names while this stays as it is.
    """
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
