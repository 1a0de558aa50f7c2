"""API keys with roles, sent as ``Authorization: Bearer KEY``.

``HOTLINE_API_KEYS="k1:call_taker,k2:supervisor,k3:admin,k4:partner@110"``. A key may carry the name of
the person it belongs to as a third part, ``k2:supervisor:王班长``: the review queue records that name as
the reviewer (claims, decisions, history) instead of asking the page for one. Roles nest: a supervisor
may do what a call-taker may, an admin what a supervisor may. ``partner@LINE`` is the other platform
(e.g. the 110 system) as a client: it stands outside that ladder, may use only the transfer-order
API, and sees and acts only on orders sent to or from its ``LINE``. With no keys set, auth is off (a local trial) and
the server must listen on loopback only (:func:`check_bind`).

Keys are compared in constant time and never logged; a :class:`Principal` carries only a short
fingerprint of its key (``key#3f2a``) for audit fields.

>>> ring = KeyRing.parse("k1:call_taker, k2:admin")
>>> ring.lookup("k2").role, ring.lookup("nope")
('admin', None)
>>> ring.lookup("k2").allows("supervisor")
True
>>> KeyRing.parse("k9:supervisor:王班长").lookup("k9").name
'王班长'

>>> p = KeyRing.parse("k9:partner@110").lookup("k9")
>>> (p.role, p.line, p.allows("call_taker"))
('partner', '110', False)
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

ROLES = ("call_taker", "supervisor", "admin")  # each role includes the ones before it
PARTNER = "partner"  # the other platform: "key:partner@110", bound to one line, outside the ladder
_LINE = re.compile(r"^[0-9]{3,5}$")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ApiKeyError(ValueError):
    """``HOTLINE_API_KEYS`` is malformed; the message names the entry and the fix."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role and a key fingerprint (never the key). ``role=None``: auth is off."""

    role: str | None
    key_id: str = "anonymous"
    name: str | None = None  # the key's owner, when HOTLINE_API_KEYS names one (key:role:name)
    line: str | None = None  # a partner's line (e.g. "110"); None for the platform's own keys

    @property
    def is_partner(self) -> bool:
        return self.role == PARTNER

    def allows(self, role: str) -> bool:
        if self.role is None:
            return True
        if self.role == PARTNER or role == PARTNER:
            return self.role == role
        return ROLES.index(self.role) >= ROLES.index(role)


ANONYMOUS = Principal(None)


def fingerprint(key: str) -> str:
    return "key#" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:4]


class KeyRing:
    """The configured keys. Empty: auth off."""

    def __init__(self, entries: list[tuple]):
        self._entries = []
        for e in entries:
            k, role, name = e[0], e[1], (e[2] if len(e) > 2 else None)
            role, _, line = role.partition("@")
            self._entries.append((k.encode("utf-8"), Principal(role, fingerprint(k), name=name, line=line or None)))

    @classmethod
    def parse(cls, spec: str) -> "KeyRing":
        """Parse ``"key:role,key:role"``; raises :class:`ApiKeyError` naming the bad entry (never its key)."""
        entries: list[tuple[str, str, str | None]] = []
        seen: set[str] = set()
        if spec and spec.strip() and not spec.replace(",", "").strip():
            raise ApiKeyError("HOTLINE_API_KEYS is set but holds no key:role entry (only commas or spaces); "
                              "unset it for a local trial on loopback, or give key:role entries")
        for i, raw in enumerate((spec or "").split(","), start=1):
            raw = raw.strip()
            if not raw:
                continue
            key, sep, role = raw.rpartition(":")
            key, role, name = key.strip(), role.strip(), None
            head, sep2, middle = key.rpartition(":")
            if role not in ROLES and sep2 and middle.strip() in ROLES and head.strip():  # key:role:name
                key, role, name = head.strip(), middle.strip(), role or None
                if name and len(name) > 32:
                    raise ApiKeyError(f"HOTLINE_API_KEYS entry {i}: the name after the role is longer than 32 characters")
            if not sep or not key:
                raise ApiKeyError(f"HOTLINE_API_KEYS entry {i} is not key:role (roles: {', '.join(ROLES)})")
            if not role:
                raise ApiKeyError(f"HOTLINE_API_KEYS entry {i} has no role after ':'; use one of {', '.join(ROLES)}")
            if role.startswith(PARTNER):
                line = role.removeprefix(PARTNER).removeprefix("@")
                if not role.startswith(PARTNER + "@") or not _LINE.match(line):
                    raise ApiKeyError(f"HOTLINE_API_KEYS entry {i}: a partner key names its line, e.g. key:partner@110")
            elif role not in ROLES:
                raise ApiKeyError(f"HOTLINE_API_KEYS entry {i}: unknown role {role!r}; use one of {', '.join(ROLES)}, or partner@LINE")
            if key in seen:
                raise ApiKeyError(f"HOTLINE_API_KEYS entry {i}: the same key is listed twice")
            seen.add(key)
            entries.append((key, role, name))
        return cls(entries)

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    @property
    def partner_lines(self) -> set[str]:
        """The lines that partner keys are bound to."""
        return {p.line for _, p in self._entries if p.is_partner and p.line}

    def lookup(self, key: str) -> Principal | None:
        """The principal for ``key``, or None. Compares against every key in constant time."""
        given = key.encode("utf-8")
        found = None
        for k, principal in self._entries:
            if hmac.compare_digest(k, given):
                found = principal
        return found


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_loopback(host: str | None) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


def check_bind(host: str, ring: KeyRing) -> None:
    """Refuse to serve without keys anywhere but loopback (raises ``ValueError`` saying why). The app
    also checks the socket each request actually arrived on (:class:`serve.middleware.LoopbackOnly`),
    since ``uvicorn --host`` may bind elsewhere than ``HOTLINE_HOST`` says."""
    if not ring.enabled and not is_loopback(host):
        raise ValueError(
            f"refusing to listen on {host} with no API keys: set HOTLINE_API_KEYS, or listen on 127.0.0.1 for a local trial"
        )
