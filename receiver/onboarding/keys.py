"""The Maskinporten client key `init` generates: an RSA private key as PEM, and its public half as a JWK to paste
into Digdir's self-service. The `kid` is the key's RFC 7638 thumbprint, so the same key always gets the same name.
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

# Digdir requires RSA keys of at least 2048 bits; 3072 keeps a margin for the key's lifetime.
KEY_SIZE = 3072


def generate_private_key(key_size: int = KEY_SIZE) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    """Unencrypted PKCS#8 PEM (the form Altinn's Bruno collection and `[maskinporten] private_key_file` read)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def jwk_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638: base64url(SHA-256) of the required members (e, kty, n) as compact JSON in lexicographic order."""
    required = {name: jwk[name] for name in ("e", "kty", "n")}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode("ascii")


def public_jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    """The public JWK with `kid` (the thumbprint), `use` sig and `alg` RS256: what Maskinporten's self-service takes."""
    members = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk = {"kty": "RSA", "e": str(members["e"]), "n": str(members["n"])}
    return {**jwk, "use": "sig", "alg": "RS256", "kid": jwk_thumbprint(jwk)}
