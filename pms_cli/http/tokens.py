"""Token caches: OS keyring when it has a backend, else an encrypted row in the store.

The store row is encrypted with AES-GCM under a key derived (HKDF-SHA256) from the credential
that minted the token: whoever can read the row but lacks the credential learns nothing, and
whoever has the credential could mint a token anyway. Plaintext tokens are never stored.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class CachedToken:
    value: str
    expires_at: float | None = None  # unix seconds; None = no known expiry
    extra: str | None = None  # e.g. a rotated refresh token

    def valid_at(self, when: float) -> bool:
        return self.expires_at is None or when < self.expires_at

    def to_json(self) -> str:
        return json.dumps({"v": self.value, "e": self.expires_at, "x": self.extra})

    @classmethod
    def from_json(cls, raw: str) -> CachedToken:
        data = json.loads(raw)
        return cls(value=data["v"], expires_at=data.get("e"), extra=data.get("x"))


class TokenCache(Protocol):
    """Where minted tokens live between runs; keys are ``provider:account`` strings."""

    def get(self, key: str) -> CachedToken | None: ...
    def put(self, key: str, token: CachedToken) -> None: ...
    def delete(self, key: str) -> None: ...


class MemoryTokenCache:
    def __init__(self) -> None:
        self._data: dict[str, CachedToken] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedToken | None:
        with self._lock:
            return self._data.get(key)

    def put(self, key: str, token: CachedToken) -> None:
        with self._lock:
            self._data[key] = token

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)


class EncryptedRowStore(Protocol):
    """The part of a Store the encrypted token cache needs."""

    def token_cache_get(self, key: str) -> tuple[bytes, float | None] | None: ...
    def token_cache_put(self, key: str, ciphertext: bytes, expires_at: float | None) -> None: ...
    def token_cache_delete(self, key: str) -> None: ...


def _derive_key(credential: str, key: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"pms-token-cache-v1", info=key.encode()
    ).derive(credential.encode())


class EncryptedStoreTokenCache:
    """Token rows in the store, AES-GCM encrypted under HKDF(credential)."""

    def __init__(self, store: EncryptedRowStore, credential: str) -> None:
        self.store = store
        self.credential = credential

    def get(self, key: str) -> CachedToken | None:
        row = self.store.token_cache_get(key)
        if row is None:
            return None
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        blob, _ = row
        try:
            plain = AESGCM(_derive_key(self.credential, key)).decrypt(blob[:12], blob[12:], None)
        except (InvalidTag, ValueError):
            return None  # minted with another credential (rotated secret): mint anew
        return CachedToken.from_json(plain.decode())

    def put(self, key: str, token: CachedToken) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        blob = nonce + AESGCM(_derive_key(self.credential, key)).encrypt(
            nonce, token.to_json().encode(), None
        )
        self.store.token_cache_put(key, blob, token.expires_at)

    def delete(self, key: str) -> None:
        self.store.token_cache_delete(key)


class KeyringTokenCache:
    """Tokens in the OS keyring (service ``pms-token``)."""

    SERVICE = "pms-token"

    def get(self, key: str) -> CachedToken | None:
        import keyring

        raw = keyring.get_password(self.SERVICE, key)
        return CachedToken.from_json(raw) if raw else None

    def put(self, key: str, token: CachedToken) -> None:
        import keyring

        keyring.set_password(self.SERVICE, key, token.to_json())

    def delete(self, key: str) -> None:
        import keyring
        from keyring.errors import PasswordDeleteError

        with contextlib.suppress(PasswordDeleteError):
            keyring.delete_password(self.SERVICE, key)
