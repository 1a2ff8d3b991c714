"""RSA signing keys for the tokens the simulator issues (Maskinporten access tokens, Altinn tokens)."""

from __future__ import annotations

import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


class SigningKey:
    """A fresh RS256 key per simulator instance; its public half is published as a JWKS."""

    def __init__(self, kid: str | None = None) -> None:
        self.kid = kid or str(uuid.uuid4())
        self._private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key = self._private.public_key()

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._private, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})

    def verify(self, token: str, *, issuer: str, leeway: float = 0.0) -> dict[str, Any]:
        """Claims of a token this key signed; raises jwt.InvalidTokenError otherwise."""
        claims: dict[str, Any] = jwt.decode(
            token,
            self.public_key,
            algorithms=["RS256"],
            issuer=issuer,
            leeway=leeway,
            options={"require": ["exp", "iat", "iss"], "verify_aud": False},
        )
        return claims

    def jwks(self) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        jwk.update(kid=self.kid, use="sig", alg="RS256")
        return {"keys": [jwk]}
