"""The fast verification path makes the same accept/reject decision as livekit-api's
WebhookReceiver on every input class, and really takes the fast path for LiveKit's tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time

import jwt
import pytest
from livekit import api

from monitor.intake.verify import Unauthorized, WebhookVerifier
from tests.support.webhooks import KEY, SECRET, Room, encode, sign, user

BODY = encode(Room().joined(user(time.time())))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def digest(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def token(claims: dict | None = None, secret: str = SECRET, algorithm: str = "HS256",
          headers: dict | None = None, drop: tuple[str, ...] = ()) -> str:
    """A JWT signed by hand, so claims of any type can be made."""
    now = int(time.time())
    base = {"iss": KEY, "nbf": now - 5, "exp": now + 300, "sha256": digest(BODY), "sub": ""}
    base.update(claims or {})
    for name in drop:
        base.pop(name, None)
    header = {"alg": algorithm, "typ": "JWT", **(headers or {})}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(base).encode())}"
    mac = b""
    if algorithm in HASHES:
        mac = hmac.new(secret.encode(), signing_input.encode(), HASHES[algorithm]).digest()
    return f"{signing_input}.{b64url(mac)}"


def raw_token(claims_text: str) -> str:
    """A JWT whose claims are this very text (which json.dumps may not write), signed."""
    header = b64url(b'{"alg":"HS256","typ":"JWT"}')
    signing_input = f"{header}.{b64url(claims_text.encode('utf-8', 'surrogatepass'))}"
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def raw_claims(extra: str, exp: str) -> str:
    return f'{{"iss":"{KEY}","sha256":"{digest(BODY)}",{extra}"exp":{exp}}}'


def tamper_claims(good: str, **changes: object) -> str:
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims.update(changes)
    return ".".join([header, b64url(json.dumps(claims).encode()), signature])


def make_cases() -> dict[str, tuple[bytes, str]]:
    """Every input class, with times relative to now (tokens age while other tests run)."""
    now = int(time.time())
    return {
        "valid (livekit-api minted)": (BODY, sign(BODY)),
        "valid (plain claims)": (BODY, token()),
        "valid with iat and jti": (BODY, token({"iat": now, "jti": "x"})),
        "valid with empty video grant": (BODY, token({"video": {}})),
        "expired": (BODY, token({"exp": now - 3600})),
        "expired within leeway": (BODY, token({"exp": now - 10})),
        "not yet valid (nbf)": (BODY, token({"nbf": now + 3600})),
        "not yet valid (iat)": (BODY, token({"iat": now + 3600})),
        "no exp": (BODY, token(drop=("exp",))),
        "exp as string": (BODY, token({"exp": str(now + 300)})),
        "exp as float": (BODY, token({"exp": now + 300.5})),
        "wrong key": (BODY, token({"iss": "someone-else"})),
        "no iss": (BODY, token(drop=("iss",))),
        "iss not a string": (BODY, token({"iss": 7})),
        "wrong secret": (BODY, token(secret="not-the-secret-not-the-secret-1234")),
        "wrong alg HS384": (BODY, token(algorithm="HS384")),
        "wrong alg HS512": (BODY, token(algorithm="HS512")),
        "alg none": (BODY, token(algorithm="none")),
        "compact header (as PyJWT writes it)": (BODY, jwt.encode(
            {"iss": KEY, "exp": now + 300, "sha256": digest(BODY)}, SECRET, algorithm="HS256")),
        "extra header field": (BODY, token(headers={"kid": "k1"})),
        "kid not a string": (BODY, token(headers={"kid": 5})),
        "tampered body": (BODY + b" ", token()),
        "tampered body content": (BODY.replace(b"participant_joined", b"participant_left"),
                                  token()),
        "tampered claims (iss)": (BODY, tamper_claims(token(), iss="evil")),
        "tampered claims (exp)": (BODY, tamper_claims(token(), exp=now + 99999)),
        "tampered claims (sha256)": (BODY + b"x",
                                     tamper_claims(token(), sha256=digest(BODY + b"x"))),
        "no sha256": (BODY, token(drop=("sha256",))),
        "empty sha256": (BODY, token({"sha256": ""})),
        "sha256 not base64": (BODY, token({"sha256": "!!!"})),
        "sha256 of other body": (BODY, token({"sha256": digest(b"other")})),
        "audience claim": (BODY, token({"aud": "someone"})),
        "video grant not an object": (BODY, token({"video": "yes"})),
        "room config claim": (BODY, token({"roomConfig": {"name": "x"}})),
        "padded segments": (BODY, token() + "=="),
        "two segments": (BODY, ".".join(token().split(".")[:2])),
        "four segments": (BODY, token() + ".abc"),
        "empty": (BODY, ""),
        "junk": (BODY, "!!!.???.***"),
        "non-canonical signature": (BODY, token()[:-1] + chr(ord(token()[-1]) ^ 1)),
        # Claims texts that JSON parsers read differently, or not at all.
        "duplicate exp, the last valid": (BODY, raw_token(raw_claims(
            f'"exp":{now - 3600},', str(now + 300)))),
        "duplicate exp, the last expired": (BODY, raw_token(raw_claims(
            f'"exp":{now + 300},', str(now - 3600)))),
        "NaN in a claim": (BODY, raw_token(raw_claims('"name":NaN,', str(now + 300)))),
        "Infinity as exp": (BODY, raw_token(raw_claims("", "Infinity"))),
        "exp beyond 64 bits": (BODY, raw_token(raw_claims("", str(10**30)))),
        "exp in exponent form": (BODY, raw_token(raw_claims("", f"{now + 300}e0"))),
        "lone surrogate escaped in sub": (BODY, raw_token(raw_claims('"sub":"\\ud800",',
                                                                     str(now + 300)))),
        "lone surrogate raw in sub": (BODY, raw_token(raw_claims('"sub":"\ud800",',
                                                                 str(now + 300)))),
        "whitespace around claims": (BODY, raw_token(" " + raw_claims("", str(now + 300)))),
    }


def reference_accepts(body: bytes, auth: str) -> bool:
    receiver = api.WebhookReceiver(api.TokenVerifier(KEY, SECRET))
    try:
        receiver.receive(body.decode(), auth)
    except Exception:
        return False
    return True


def ours_accepts(verifier: WebhookVerifier, body: bytes, auth: str) -> bool:
    try:
        verifier.verify(body, auth)
    except Unauthorized:
        return False
    return True


CASE_NAMES = list(make_cases())


@pytest.mark.parametrize("case", CASE_NAMES)
def test_same_decision_as_webhook_receiver(case: str) -> None:
    body, auth = make_cases()[case]
    verifier = WebhookVerifier(KEY, SECRET)
    assert ours_accepts(verifier, body, auth) == reference_accepts(body, auth)


def test_the_input_classes_cover_accept_and_reject() -> None:
    cases = make_cases()
    decisions = {case: reference_accepts(*cases[case]) for case in cases}
    assert decisions["valid (livekit-api minted)"] and decisions["expired within leeway"]
    assert not decisions["expired"] and not decisions["wrong secret"]


@pytest.mark.parametrize("case", ["valid (livekit-api minted)", "valid (plain claims)",
                                  "expired", "wrong key", "wrong secret", "tampered body",
                                  "tampered claims (iss)", "not yet valid (nbf)"])
def test_livekit_shaped_tokens_take_the_fast_path(case: str) -> None:
    verifier = WebhookVerifier(KEY, SECRET)
    ours_accepts(verifier, *make_cases()[case])
    assert (verifier.fast_decisions, verifier.reference_decisions) == (1, 0)


def test_random_mutations_agree() -> None:
    """Flip, drop and insert characters of valid tokens: both sides decide alike."""
    rng = random.Random(1234)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
    verifier = WebhookVerifier(KEY, SECRET)
    good = sign(BODY)
    for _ in range(400):
        chars = list(good)
        position = rng.randrange(len(chars))
        action = rng.choice(("replace", "drop", "insert"))
        if action == "replace":
            chars[position] = rng.choice(alphabet)
        elif action == "drop":
            del chars[position]
        else:
            chars.insert(position, rng.choice(alphabet))
        mutated = "".join(chars)
        assert ours_accepts(verifier, BODY, mutated) == reference_accepts(BODY, mutated), mutated


@pytest.mark.parametrize("secret", ["s", "x" * 63, "y" * 64, "z" * 65, "long secret " * 30])
def test_secrets_of_every_length_take_the_fast_path(secret: str) -> None:
    """The fast path's keyed HMAC state, made once and copied per token: tokens signed with the
    secret are accepted, and one signed with another is not, for keys on either side of
    SHA-256's 64-byte block."""
    verifier = WebhookVerifier(KEY, secret)
    signed_here = sign(BODY, secret=secret)
    assert ours_accepts(verifier, BODY, signed_here)
    assert not ours_accepts(verifier, BODY, sign(BODY, secret=secret + "!"))
    assert (verifier.fast_decisions, verifier.reference_decisions) == (2, 0)
