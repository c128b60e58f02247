"""Ed25519 JWTs: upstream's published token verifies, everything not EdDSA is refused."""

import base64
import json
import re
from pathlib import Path

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cccommon import jwt as ccjwt

DEMO_PUB = "kzfYrYy+TzpanWZHJ5qSdMj5uKUWgq74BWhQG6copP0="
DEMO_PRIV = "dtPC/6dWJFKZK7KZ78CvWuynylOmjBFyMsUWArwmodOTN9itjL5POlqdZkcnmpJ0yPm4pRaCrvgFaFAbpyik/Q=="
README_TOKEN = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9.eyJ1c2VyIjoiYWRtaW4iLCJyb2xlcyI6WyJST0xFX0FETUlOIiwiUk9MRV9BTkFMWVNUIiwiUk9MRV9VU0VSIl19."
    "d-3_3FZTsadPjDEdsWrrQ7nS0edMAR4zjl-eK7rJU3HziNBfI9PDHDIpJVHTNN5E5SlLGLFXctWyKAkwhXL-Dw"
)
GUIDE = Path(__file__).resolve().parents[3] / "shared" / "seed" / "clustercockpit-howto-guides.txt"


def b64u(obj) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_readme_token_verifies():
    claims = ccjwt.verify(README_TOKEN, DEMO_PUB)
    assert claims == {"user": "admin", "roles": ["ROLE_ADMIN", "ROLE_ANALYST", "ROLE_USER"]}
    assert ccjwt.verify(README_TOKEN, ccjwt.load_public_key(DEMO_PUB)) == claims


def test_guide_sinks_token_rejected():
    if not GUIDE.exists():
        pytest.skip("how-to guide not available")
    tokens = re.findall(r'"jwt":\s*"(eyJ[^"]+)"', GUIDE.read_text())
    assert tokens, "guide sinks.json token not found"
    for tok in tokens:
        with pytest.raises(ccjwt.TokenError, match="verification error"):
            ccjwt.verify(tok, DEMO_PUB)


def test_demo_keypair_consistent_and_signs():
    priv = ccjwt.load_private_key(DEMO_PRIV)
    assert ccjwt.public_key_b64(priv) == DEMO_PUB
    tok = ccjwt.sign({"sub": "admin", "roles": ["admin", "api"]}, priv)
    header = json.loads(base64.urlsafe_b64decode(tok.split(".")[0] + "=="))
    assert header == {"alg": "EdDSA", "typ": "JWT"}
    assert ccjwt.verify(tok, DEMO_PUB)["sub"] == "admin"


def test_seed_only_private_key_accepted():
    seed = base64.b64decode(DEMO_PRIV)[:32]
    key = ccjwt.load_private_key(base64.b64encode(seed).decode())
    assert ccjwt.public_key_b64(key) == DEMO_PUB


def test_generate_keypair_format():
    pub, priv = ccjwt.generate_keypair()
    assert len(base64.b64decode(pub)) == 32
    raw = base64.b64decode(priv)
    assert len(raw) == 64 and raw[32:] == base64.b64decode(pub)
    assert ccjwt.verify(ccjwt.sign({"sub": "x"}, priv), pub) == {"sub": "x"}


@pytest.mark.parametrize(
    "value,match",
    [
        ("", "empty"),
        ("not base64!!", "base64"),
        (base64.b64encode(b"x" * 31).decode(), "32 bytes"),
    ],
)
def test_bad_public_keys(value, match):
    with pytest.raises(ValueError, match=match):
        ccjwt.load_public_key(value)


def test_bad_private_keys():
    with pytest.raises(ValueError, match="64 bytes"):
        ccjwt.load_private_key(base64.b64encode(b"x" * 48).decode())
    raw = bytearray(base64.b64decode(DEMO_PRIV))
    raw[40] ^= 1
    with pytest.raises(ValueError, match="inconsistent"):
        ccjwt.load_private_key(base64.b64encode(bytes(raw)).decode())


def test_rejects_alg_none_and_hmac():
    payload = b64u({"sub": "admin", "roles": ["admin", "api"]})
    none_tok = f"{b64u({'alg': 'none', 'typ': 'JWT'})}.{payload}."
    with pytest.raises(ccjwt.TokenError, match="only Ed25519/EdDSA"):
        ccjwt.verify(none_tok, DEMO_PUB)
    hs = pyjwt.encode({"sub": "admin"}, "secret-key-that-is-long-enough-32b", algorithm="HS256")
    with pytest.raises(ccjwt.TokenError, match="'HS256'.*only Ed25519/EdDSA"):
        ccjwt.verify(hs, DEMO_PUB)
    # HMAC keyed with the public key bytes (classic key-confusion attack)
    hs2 = pyjwt.encode({"sub": "admin"}, base64.b64decode(DEMO_PUB), algorithm="HS256")
    with pytest.raises(ccjwt.TokenError):
        ccjwt.verify(hs2, DEMO_PUB)


def test_wrong_key_and_tampering():
    other = Ed25519PrivateKey.generate()
    tok = ccjwt.sign({"sub": "a"}, other)
    with pytest.raises(ccjwt.TokenError, match="verification error"):
        ccjwt.verify(tok, DEMO_PUB)
    good = ccjwt.sign({"sub": "a", "roles": ["user"]}, DEMO_PRIV)
    h, _, s = good.split(".")
    forged = f"{h}.{b64u({'sub': 'a', 'roles': ['admin']})}.{s}"
    with pytest.raises(ccjwt.TokenError):
        ccjwt.verify(forged, DEMO_PUB)


@pytest.mark.parametrize("tok", ["", "abc", "a.b", "a.b.c.d", "!!!.e30.AAAA", "e30.e30.!!!"])
def test_malformed(tok):
    with pytest.raises(ccjwt.TokenError, match="malformed|only Ed25519"):
        ccjwt.verify(tok, DEMO_PUB)


def test_non_object_claims():
    key = ccjwt.load_private_key(DEMO_PRIV)
    h = b64u({"alg": "EdDSA", "typ": "JWT"})
    p = b64u(b"[1,2]")
    sig = b64u(key.sign(f"{h}.{p}".encode()))
    with pytest.raises(ccjwt.TokenError, match="not a JSON object"):
        ccjwt.verify(f"{h}.{p}.{sig}", DEMO_PUB)


def test_time_claims_without_leeway():
    tok = ccjwt.sign({"sub": "a", "exp": 1000, "nbf": 500, "iat": 400}, DEMO_PRIV)
    assert ccjwt.verify(tok, DEMO_PUB, now=999.0)["sub"] == "a"
    assert ccjwt.verify(tok, DEMO_PUB, now=500.0)
    with pytest.raises(ccjwt.TokenError, match="Token is expired"):
        ccjwt.verify(tok, DEMO_PUB, now=1000.0)
    with pytest.raises(ccjwt.TokenError, match="not valid yet"):
        ccjwt.verify(tok, DEMO_PUB, now=499.0)
    tok_iat = ccjwt.sign({"iat": 2000}, DEMO_PRIV)
    with pytest.raises(ccjwt.TokenError, match="used before issued"):
        ccjwt.verify(tok_iat, DEMO_PUB, now=1999.0)
    with pytest.raises(ccjwt.TokenError, match="invalid type"):
        ccjwt.verify(ccjwt.sign({"exp": "soon"}, DEMO_PRIV), DEMO_PUB)


def test_other_claims_ignored():
    # pyjwt would reject these by default (aud without audience, non-string sub/jti)
    tok = ccjwt.sign({"aud": "somewhere", "sub": 5, "jti": 7, "iss": "x"}, DEMO_PRIV)
    assert ccjwt.verify(tok, DEMO_PUB)["aud"] == "somewhere"


def test_max_age():
    tok = ccjwt.sign({"sub": "a", "iat": 1000}, DEMO_PRIV)
    assert ccjwt.verify(tok, DEMO_PUB, max_age=100, now=1100)
    with pytest.raises(ccjwt.TokenError, match="max-age"):
        ccjwt.verify(tok, DEMO_PUB, max_age=100, now=1100.5)
    assert ccjwt.verify(README_TOKEN, DEMO_PUB, max_age=1)  # no iat: nothing to compare


def test_token_cache_rechecks_time_and_bounds_size():
    cache = ccjwt.TokenCache(maxsize=3)
    tok = ccjwt.sign({"sub": "a", "exp": 1000}, DEMO_PRIV)
    assert cache.verify(tok, DEMO_PUB, now=10)["sub"] == "a"
    assert len(cache) == 1
    claims = cache.verify(tok, DEMO_PUB, now=20)
    claims["sub"] = "mutated"
    assert cache.verify(tok, DEMO_PUB, now=30)["sub"] == "a"
    with pytest.raises(ccjwt.TokenError, match="expired"):
        cache.verify(tok, DEMO_PUB, now=1000)
    assert len(cache) == 0
    for i in range(3):
        cache.verify(ccjwt.sign({"i": i}, DEMO_PRIV), DEMO_PUB)
    assert len(cache) == 3
    cache.verify(ccjwt.sign({"i": 99}, DEMO_PRIV), DEMO_PUB)
    assert len(cache) == 1
    with pytest.raises(ccjwt.TokenError):
        cache.verify(README_TOKEN[:-4] + "AAAA", DEMO_PUB)
    other_pub, _ = ccjwt.generate_keypair()
    cache.verify(README_TOKEN, DEMO_PUB)
    with pytest.raises(ccjwt.TokenError):  # cached under a different key: must not leak
        cache.verify(README_TOKEN, other_pub)
