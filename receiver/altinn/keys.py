"""The key that signs the Maskinporten grant: a PEM or JWK private key (header `kid`), or a business certificate
chain from PEM or PKCS#12 (header `x5c`). Every problem is a ConfigError naming the `[maskinporten]` key to fix.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import pkcs12
from jwt.algorithms import RSAAlgorithm

from receiver.config import ConfigError, MaskinportenConfig

SECTION = "maskinporten"


@dataclass(frozen=True)
class SigningKey:
    """What signs the assertion, and the one header that names it: exactly one of `kid` and `x5c` is set."""

    private_key: RSAPrivateKey
    kid: str | None = None
    x5c: tuple[str, ...] | None = None

    @property
    def header(self) -> dict[str, Any]:
        if self.kid is not None:
            return {"kid": self.kid}
        return {"x5c": list(self.x5c or ())}

    @property
    def description(self) -> str:
        return f"kid {self.kid}" if self.kid is not None else f"x5c certificate chain of {len(self.x5c or ())}"


def load_signing_key(config: MaskinportenConfig) -> SigningKey:
    """Read the configured key material; ConfigError if a file is missing, unreadable or does not hold an RSA key."""
    private_key: RSAPrivateKey | None = None
    jwk_kid: str | None = None
    if config.private_key_file is not None:
        data = _read(config.private_key_file, "private_key_file")
        if data.lstrip().startswith(b"{"):
            private_key, jwk_kid = _jwk_private_key(data)
        else:
            private_key = _pem_private_key(
                data, config.certificate_password, "private_key_file", config.private_key_file
            )
    chain: list[x509.Certificate] = []
    if config.certificate_file is not None:
        cert_key, chain = _certificate_chain(config.certificate_file, config.certificate_password)
        private_key = private_key or cert_key
        if private_key is None:
            raise ConfigError(
                f"{SECTION}.private_key_file",
                f"{config.certificate_file} holds no private key: give the certificate's key in private_key_file",
            )
        if _public_der(chain[0].public_key()) != _public_der(private_key.public_key()):
            raise ConfigError(
                f"{SECTION}.certificate_file",
                f"the certificate in {config.certificate_file} does not belong to the private key",
            )
    if private_key is None:
        raise ConfigError(f"{SECTION}.private_key_file", "is required (or certificate_file) to sign the grant")
    kid = config.kid or (None if chain else jwk_kid)
    if kid:
        return SigningKey(private_key, kid=kid)
    if chain:
        return SigningKey(private_key, x5c=tuple(_der_base64(cert) for cert in chain))
    raise ConfigError(
        f"{SECTION}.kid",
        "is required: name the key you registered in Digdir's self-service (or use certificate_file for x5c)",
    )


def _read(path: Path, item: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{SECTION}.{item}", f"file {path} does not exist") from None
    except PermissionError:
        raise ConfigError(
            f"{SECTION}.{item}", f"cannot read {path}: permission denied to the user the receiver runs as (uid "
            f"{os.getuid()}): make the file readable by it"
        ) from None  # fmt: skip
    except OSError as exc:
        raise ConfigError(f"{SECTION}.{item}", f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None


def _rsa(key: object, item: str, path: str) -> RSAPrivateKey:
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(f"{SECTION}.{item}", f"{path} must hold an RSA private key (Maskinporten signs with RS256)")
    return key


def _pem_private_key(data: bytes, password: str, item: str, path: Path) -> RSAPrivateKey:
    """The RSA key in PEM `data`, with a problem for each way a key file goes wrong: empty, not PEM, a public key or
    a certificate alone, encrypted without a password or with the wrong one. The password is used only when the key
    is encrypted: it may be set for a PKCS#12 certificate beside a plain key file."""
    key_name = f"{SECTION}.{item}"
    if not data.strip():
        raise ConfigError(key_name, f"{path} is empty: it must hold the private key (-----BEGIN PRIVATE KEY-----)")
    if b"PRIVATE KEY-----" not in data:
        if b"PUBLIC KEY-----" in data:
            found = "a public key: give the private key that signs (Digdir holds the public one)"
        elif b"CERTIFICATE-----" in data:
            found = "a certificate and no private key: give the certificate as certificate_file and its key here"
        else:
            found = "no PEM private key (-----BEGIN PRIVATE KEY-----) nor a JWK"
        raise ConfigError(key_name, f"{path} holds {found}")
    encrypted = b"ENCRYPTED" in data
    if encrypted and not password:
        raise ConfigError(
            f"{SECTION}.certificate_password",
            f"is required: the private key in {path} is encrypted (set certificate_password or its _file)",
        )
    try:
        key = serialization.load_pem_private_key(data, password.encode() if encrypted else None)
    except ValueError:
        if encrypted:
            raise ConfigError(
                f"{SECTION}.certificate_password", f"does not decrypt the private key in {path}"
            ) from None
        raise ConfigError(
            key_name, f"{path} holds a PEM private key that cannot be read (damaged or cut short?)"
        ) from None
    except TypeError:  # cryptography's word for a password that does not fit whether the key is encrypted
        raise ConfigError(f"{SECTION}.certificate_password", f"does not fit the private key in {path}") from None
    return _rsa(key, item, str(path))


def _jwk_private_key(data: bytes) -> tuple[RSAPrivateKey, str | None]:
    item = f"{SECTION}.private_key_file"
    try:
        jwk = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(item, f"looks like JSON but is not valid JSON ({exc})") from None
    if isinstance(jwk, dict) and isinstance(jwk.get("keys"), list):
        if len(jwk["keys"]) != 1:
            raise ConfigError(item, f"holds a JWK set of {len(jwk['keys'])} keys: keep only the one that signs")
        jwk = jwk["keys"][0]
    if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or "d" not in jwk:
        raise ConfigError(item, "must be an RSA private JWK (kty RSA, with the private member d)")
    try:
        key = RSAAlgorithm.from_jwk(jwk)
    except Exception as exc:  # pyjwt raises several types for a malformed JWK
        raise ConfigError(item, f"not a usable RSA JWK ({exc})") from None
    kid = jwk.get("kid")
    return _rsa(key, "private_key_file", "the JWK"), str(kid) if kid else None


def _certificate_chain(path: Path, password: str) -> tuple[RSAPrivateKey | None, list[x509.Certificate]]:
    """The leaf-first chain (and a private key, if the file holds one) from a PEM bundle or a PKCS#12 file."""
    item = "certificate_file"
    data = _read(path, item)
    if b"-----BEGIN" in data:
        try:
            chain = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise ConfigError(f"{SECTION}.{item}", f"{path} holds no readable PEM certificate") from None
        pem_key = _pem_private_key(data, password, item, path) if b"PRIVATE KEY-----" in data else None
        return pem_key, chain
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password.encode() if password else None)
    except ValueError as exc:
        hint = "check certificate_password" if "password" in str(exc).lower() else "expected PEM or PKCS#12"
        raise ConfigError(f"{SECTION}.{item}", f"cannot read {path}: {hint}") from None
    if cert is None:
        raise ConfigError(f"{SECTION}.{item}", f"{path} holds no certificate")
    return (_rsa(key, item, str(path)) if key is not None else None), [cert, *extra]


def _public_der(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def _der_base64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
