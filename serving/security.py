"""API keys: `Authorization: Bearer <key>`, checked against SHA-256 hashes with scopes.

The server never stores a key, only `sha256:<hex>:<scopes>` entries
(`ADUAN_API_KEYS`, separated by spaces or ";"). Scopes:

- `route`: `/v1/route`, `/v1/route/batch`, `/v1/complaints`, `/v1/model`
- `feedback`: `/v1/feedback`
- `admin`: `/v1/admin/*`
- `*`: all of them

An entry without scopes gets `route,feedback`. Make a key with
`aduan api-key new --scopes route,admin` (prints the key once and the entry
to put in `ADUAN_API_KEYS`), or hash one you have with `aduan api-key hash`.
`/healthz`, `/readyz`, `/metrics` and the docs stay open.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

SCOPES = ("route", "feedback", "admin")
DEFAULT_SCOPES = frozenset({"route", "feedback"})
_ENTRY = re.compile(r"sha256:([0-9a-fA-F]{64})(?::([A-Za-z*,]*))?")


class KeyConfigError(ValueError):
    """ADUAN_API_KEYS cannot be parsed; the message says which entry (never a key)."""


@dataclass(frozen=True)
class ApiKey:
    digest: bytes
    scopes: frozenset[str]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_entry(key: str, scopes: str = "route,feedback") -> str:
    """The `ADUAN_API_KEYS` entry for a key (scopes written without spaces: entries are
    separated by whitespace, so "route, admin" must become "route,admin")."""
    parse_scopes(scopes)
    names = [s.strip() for s in scopes.split(",") if s.strip()]
    return f"sha256:{hash_key(key)}:{','.join(dict.fromkeys(names))}"


def new_key() -> str:
    return "adn_" + secrets.token_urlsafe(32)


def parse_scopes(text: str) -> frozenset[str]:
    names = {s.strip() for s in text.split(",") if s.strip()}
    if "*" in names:
        return frozenset(SCOPES)
    unknown = sorted(names - set(SCOPES))
    if unknown:
        raise KeyConfigError(
            f"unknown scope(s) {', '.join(unknown)}; scopes are {', '.join(SCOPES)} or *"
        )
    return frozenset(names) or DEFAULT_SCOPES


def parse_keys(config: str) -> list[ApiKey]:
    """Parse ADUAN_API_KEYS; an empty string means no authentication."""
    keys = []
    for n, entry in enumerate(re.split(r"[\s;]+", config.strip()), start=1):
        if not entry:
            continue
        m = _ENTRY.fullmatch(entry)
        if not m:
            raise KeyConfigError(
                f"ADUAN_API_KEYS entry {n} is not 'sha256:<64 hex digits>:<scopes>' "
                "(make one with `aduan api-key new`)"
            )
        keys.append(ApiKey(bytes.fromhex(m.group(1)), parse_scopes(m.group(2) or "")))
    return keys


class KeyChecker:
    """Answers which scopes a bearer token has (None: not a known key)."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = keys

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def scopes(self, authorization: str | None) -> frozenset[str] | None:
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = hashlib.sha256(token.strip().encode("utf-8")).digest()
        found: frozenset[str] | None = None
        for key in self.keys:  # compare with every key: time does not tell which matched
            if hmac.compare_digest(digest, key.digest):
                found = key.scopes
        return found
