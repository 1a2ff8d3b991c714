"""Loading the key that signs the Maskinporten grant: PEM or JWK with kid, PEM or PKCS#12 chains with x5c."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from receiver.altinn.keys import load_signing_key
from receiver.config import ConfigError, MaskinportenConfig
from tests.altinn_support import business_certificate, der, new_key, write_jwk, write_pem_key

KEY = new_key()


def config(**kwargs: object) -> MaskinportenConfig:
    return MaskinportenConfig(issuer="https://test.maskinporten.no/", client_id="c", **kwargs)  # type: ignore[arg-type]


def public_der(key: object) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


def test_pem_key_signs_with_the_configured_kid(tmp_path: Path) -> None:
    signing = load_signing_key(config(kid="my-kid", private_key_file=write_pem_key(KEY, tmp_path / "k.pem")))
    assert signing.header == {"kid": "my-kid"}
    assert public_der(signing.private_key.public_key()) == public_der(KEY.public_key())


def test_encrypted_pem_needs_the_password(tmp_path: Path) -> None:
    path = write_pem_key(KEY, tmp_path / "k.pem", password="s3cret")
    with pytest.raises(ConfigError) as err:
        load_signing_key(config(kid="k", private_key_file=path))
    assert err.value.key == "maskinporten.certificate_password"
    assert load_signing_key(config(kid="k", private_key_file=path, certificate_password="s3cret")).kid == "k"


def test_jwk_brings_its_own_kid_and_config_overrides_it(tmp_path: Path) -> None:
    path = write_jwk(KEY, tmp_path / "k.json", kid="jwk-kid")
    assert load_signing_key(config(private_key_file=path)).header == {"kid": "jwk-kid"}
    assert load_signing_key(config(private_key_file=path, kid="other")).header == {"kid": "other"}


def test_key_without_any_kid_is_a_config_error(tmp_path: Path) -> None:
    for path in (write_jwk(KEY, tmp_path / "k.json"), write_pem_key(KEY, tmp_path / "k.pem")):
        with pytest.raises(ConfigError) as err:
            load_signing_key(config(private_key_file=path))
        assert err.value.key == "maskinporten.kid"


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"not a key at all", "PEM"), (b'{"kty": "RSA"}', "private JWK"), (b"{oops", "not valid JSON")],
)
def test_unreadable_key_file_names_the_key(tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "k"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_signing_key(config(kid="k", private_key_file=path))
    assert err.value.key == "maskinporten.private_key_file"
    assert needle in err.value.problem


def test_missing_key_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_signing_key(config(kid="k", private_key_file=tmp_path / "absent.pem"))


def test_non_rsa_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(ConfigError, match="RSA"):
        load_signing_key(config(kid="k", private_key_file=path))


def test_pem_chain_with_key_file_signs_with_x5c_leaf_first(tmp_path: Path) -> None:
    chain = business_certificate(KEY)
    cert_file = tmp_path / "chain.pem"
    cert_file.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    signing = load_signing_key(
        config(private_key_file=write_pem_key(KEY, tmp_path / "k.pem"), certificate_file=cert_file)
    )
    assert set(signing.header) == {"x5c"}
    assert [base64.b64decode(c) for c in signing.header["x5c"]] == [der(c) for c in chain]


def test_pkcs12_holds_key_and_chain(tmp_path: Path) -> None:
    leaf, ca = business_certificate(KEY)
    p12 = tmp_path / "virksomhet.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(b"org", KEY, leaf, [ca], serialization.BestAvailableEncryption(b"pw"))
    )
    signing = load_signing_key(config(certificate_file=p12, certificate_password="pw"))
    assert signing.kid is None
    assert base64.b64decode(signing.header["x5c"][0]) == der(leaf)
    with pytest.raises(ConfigError) as err:
        load_signing_key(config(certificate_file=p12, certificate_password="wrong"))
    assert err.value.key == "maskinporten.certificate_file"
    assert "certificate_password" in err.value.problem


def test_certificate_of_another_key_is_refused(tmp_path: Path) -> None:
    cert_file = tmp_path / "chain.pem"
    cert_file.write_bytes(business_certificate(new_key())[0].public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ConfigError, match="does not belong"):
        load_signing_key(config(private_key_file=write_pem_key(KEY, tmp_path / "k.pem"), certificate_file=cert_file))
