"""Keys, rotation schedule and tokens of the soak test, all made before the run starts.

Time is the wall clock (epoch seconds): the JWKS server decides what it serves from
``time.time()`` and wrk's Lua picks tokens with ``os.time()``, so both read the same clock.
Everything is made relative to ``t0`` (the moment key 0 is published), which is fixed only
once the material exists: the token files are written with absolute times then.

Key ``i`` (``i = 0, 1, …``) is **added** to the JWKS at ``t0 + i * rotate`` and **removed** at
``t0 + (i + 1) * rotate + keep`` (it stays served ``keep`` seconds after the next key takes over).

Each token carries an eligibility window ``[start, end]`` (epoch seconds, inclusive); the Lua
script only sends a token while ``start <= os.time() <= end``:

* **valid**: signed by key ``i``, from ``added + valid_after`` (the filter's 10 s refetch interval
  plus a margin) until ``removed - valid_before``;
* **expired**: ``exp`` in the past (beyond the 60 s skew), signed by key ``i`` while it is served;
* **forged**: tampered signature, payload swapped under a real signature, signed by an unknown key
  with a served ``kid``, HS256 keyed with a served public key, ``alg`` swapped within the family
  (while key ``i`` is served); a real key's token before that key is published; unknown ``kid``;
  no ``kid`` and an unknown key (always);
* **malformed**: garbage, wrong segment counts, bad base64url, invalid JSON, ``alg: none``, no or
  unknown ``alg``, a non-integer ``exp``, a token over ``maxTokenBytes`` (always).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import jwtmint  # noqa: E402  (the e2e suite's keys and tokens: `cryptography` only)
from jwtmint import b64json, b64url, mint, mint_hmac, mint_unsigned, raw_token, tamper_signature  # noqa: E402

ISSUER = "https://soak.example.com"
AUDIENCE = "soak-api"
OPEN = None  # an unbounded side of a window
CLASSES = ("valid", "expired", "forged", "malformed")

# The new signing key's algorithm, round robin: every family, several curves and hashes.
ALGORITHMS = ("RS256", "ES256", "PS256", "EdDSA", "ES384", "RS384", "HS256", "ES512", "PS512", "RS512")
SAME_FAMILY = {"RS256": "RS384", "RS384": "RS512", "RS512": "RS256", "PS256": "PS384", "PS512": "PS256",
               "ES256": "ES384", "ES384": "ES256", "ES512": "ES256", "EdDSA": "ES256", "HS256": "HS384"}
# (EdDSA -> Ed25519 would be the same algorithm under its other name, not a forgery)


@dataclass
class Schedule:
    rotate: int          # a new key every this many seconds
    keep: int            # a superseded key stays served this long
    valid_after: int     # valid tokens of a key are used from added + valid_after
    valid_before: int    # ... until removed - valid_before
    keys: int            # how many keys the run needs
    t0: int = 0          # epoch seconds key 0 is published (set before the run starts)

    def added(self, i: int) -> int:
        return self.t0 + i * self.rotate

    def removed(self, i: int) -> int:
        return self.t0 + (i + 1) * self.rotate + self.keep

    def served(self, now: float) -> list[int]:
        """Indices of the keys served at ``now`` (epoch seconds)."""
        return [i for i in range(self.keys) if self.added(i) <= now < self.removed(i)]

    def valid_window(self, i: int) -> tuple[int, int]:
        return self.added(i) + self.valid_after, self.removed(i) - self.valid_before


@dataclass
class Token:
    cls: str
    kind: str
    label: str
    token: str
    window: tuple[int | None, int | None] = (OPEN, OPEN)  # offsets from t0, inclusive
    query: bool = False  # sent as ?access_token= instead of Authorization: Bearer

    def line(self, t0: int) -> str:
        for part in (self.kind, self.label, self.token):
            assert "\t" not in part and "\n" not in part and "\r" not in part, part[:80]
        start = 0 if self.window[0] is OPEN else t0 + self.window[0]
        end = 2**31 - 1 if self.window[1] is OPEN else t0 + self.window[1]
        return "\t".join((str(start), str(end), self.kind, self.label, "q" if self.query else "h", self.token))


@dataclass
class Material:
    schedule: Schedule
    keys: list[jwtmint.Key]
    tokens: dict[str, list[Token]] = field(default_factory=dict)

    def jwk(self, i: int) -> dict:
        return self.keys[i].jwk()

    def write(self, folder: Path) -> dict[str, Path]:
        """One token file per class (``<class>.tokens``: tab-separated, absolute times, see
        soak.lua), and ``schedule.json``.  ``schedule.t0`` must be set."""
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        t0 = self.schedule.t0
        for cls, tokens in self.tokens.items():
            path = folder / f"{cls}.tokens"
            path.write_text("".join(t.line(t0) + "\n" for t in tokens))
            files[cls] = path
        schedule = [{"key": i, "kid": k.kid, "alg": k.alg, "added": self.schedule.added(i),
                     "removed": self.schedule.removed(i), "valid": self.schedule.valid_window(i)}
                    for i, k in enumerate(self.keys)]
        (folder / "schedule.json").write_text(json.dumps(schedule, indent=1))
        return files


def payload(sub: str, i: int, *, exp: int, iat: int, **extra: object) -> dict:
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "key": i, "iat": iat, "exp": exp,
            "org": "soak", "scope": "read write", **extra}


def make(schedule: Schedule, *, valid_per_key: int, now: int, end: int) -> Material:
    """Keys and tokens; windows relative to ``schedule.t0`` (still 0 here).  ``now`` and ``end``
    (epoch seconds, roughly the start and end of the run) set ``iat``/``exp``."""
    assert schedule.t0 == 0
    keys = [jwtmint.generate(ALGORITHMS[i % len(ALGORITHMS)], kid=f"soak-{i:03d}-{ALGORITHMS[i % len(ALGORITHMS)]}")
            for i in range(schedule.keys)]
    m = Material(schedule, keys, {cls: [] for cls in CLASSES})
    far = end + 3600            # valid tokens outlive the run
    ghost = {alg: jwtmint.generate(alg) for alg in set(ALGORITHMS)}   # never served

    for i, key in enumerate(keys):
        served = (schedule.added(i), schedule.removed(i) - 1)
        tag = f"k{i}-{key.alg}"
        # valid: distinct tokens (more than the filter's 1024-entry token cache holds, across
        # the keys in use at once); one in four carried in the query string.
        first_valid = None
        for n in range(valid_per_key):
            tok = mint(key, payload(f"user-{i}-{n}", i, exp=far, iat=now, jti=f"{i}-{n}"))
            first_valid = first_valid or tok
            m.tokens["valid"].append(Token("valid", key.alg, tag, tok, schedule.valid_window(i), query=n % 4 == 3))

        # expired: a real signature by a served key, exp beyond the 60 s skew.
        for n, ago in enumerate((90, 3600, 86400, 365 * 86400)):
            tok = mint(key, payload(f"late-{i}-{n}", i, exp=now - ago, iat=now - ago - 600))
            m.tokens["expired"].append(Token("expired", f"exp-{ago}s-ago", tag, tok, served, query=n == 1))

        # forged, while key i is served
        head, body, _ = first_valid.split(".")
        admin = b64json(payload("admin", i, exp=far, iat=now, org="root"))
        forged = {
            "tampered-signature": tamper_signature(first_valid),
            "payload-swapped": f"{head}.{admin}.{first_valid.split('.')[2]}",
            "unknown-key-served-kid": mint(ghost[key.alg], payload("mallory", i, exp=far, iat=now),
                                           kid=key.kid, alg=key.alg),
            "alg-swapped": raw_token(b64json(jwtmint.header_for(key, alg=SAME_FAMILY[key.alg])), body,
                                     first_valid.split(".")[2]),
        }
        if key.secret is None:
            # algorithm confusion: HS256 keyed with the served public key (PEM and JWK text)
            forged["hs256-with-public-pem"] = mint_hmac(key.public_pem().encode(), payload("mallory", i, exp=far, iat=now),
                                                        kid=key.kid)
            forged["hs256-with-public-jwk"] = mint_hmac(json.dumps(key.jwk()).encode(),
                                                        payload("mallory", i, exp=far, iat=now), kid=key.kid)
        for kind, tok in forged.items():
            m.tokens["forged"].append(Token("forged", kind, tag, tok, served))
        # a real key's token before the key is published; it stops 5 s before: a request that
        # triggers a refetch may wait up to timeout + 1 s for it, and os.time() rounds down
        m.tokens["forged"].append(Token("forged", "unpublished-key", tag, first_valid,
                                        (OPEN, schedule.added(i) - 5)))

    # forged, at any time: unknown kids (each may trigger a refetch, at most one per 10 s) and
    # no kid at all (every key of the algorithm is tried)
    for n, alg in enumerate(ALGORITHMS):
        m.tokens["forged"].append(Token("forged", "unknown-kid", f"ghost-{alg}",
                                        mint(ghost[alg], payload("ghost", -1, exp=far, iat=now), kid=f"ghost-{n}")))
        m.tokens["forged"].append(Token("forged", "no-kid-unknown-key", f"ghost-{alg}",
                                        mint(ghost[alg], payload("ghost", -1, exp=far, iat=now), kid=None)))

    # malformed, at any time
    good = m.tokens["valid"][0].token
    h, p, s = good.split(".")
    kid0 = keys[0].kid
    malformed = {
        "garbage": "not-a-jwt",
        "garbage-long": "x" * 300,
        "one-dot": f"{h}.{p}",
        "four-segments": f"{good}.{s}",
        "empty-segments": "..",
        "header-bad-base64": f"{h[:-2]}*!.{p}.{s}",
        "payload-bad-base64": f"{h}.{p[:-2]}%%.{s}",
        "signature-bad-base64": f"{h}.{p}.{s[:-3]}$@~",
        "header-not-json": f"{b64url('{not json')}.{p}.{s}",
        "payload-not-json": f"{h}.{b64url('[1,2')}.{s}",
        "alg-none": mint_unsigned({"alg": "none", "kid": kid0}, payload("none", 0, exp=end + 3600, iat=now)),
        "alg-none-with-signature": mint_unsigned({"alg": "none", "typ": "JWT"},
                                                 payload("none", 0, exp=end + 3600, iat=now), s),
        "alg-missing": mint_unsigned({"typ": "JWT", "kid": kid0}, payload("x", 0, exp=end + 3600, iat=now), s),
        "alg-unknown": mint_unsigned({"alg": "XS256", "kid": kid0}, payload("x", 0, exp=end + 3600, iat=now), s),
        "kid-not-string": mint_unsigned({"alg": keys[0].alg, "kid": 7}, payload("x", 0, exp=end + 3600, iat=now), s),
        "exp-not-integer": raw_token(h, b64json({**payload("x", 0, exp=0, iat=now), "exp": "tomorrow"}), s),
        "iss-not-string": raw_token(h, b64json({**payload("x", 0, exp=end + 3600, iat=now), "iss": 42}), s),
        "over-max-token-bytes": f"{h}.{'A' * 33000}.{s}",
    }
    for kind, tok in malformed.items():
        m.tokens["malformed"].append(Token("malformed", kind, "-", tok))
        if len(tok) < 2000 and all(c.isalnum() or c in "-_." for c in tok):
            m.tokens["malformed"].append(Token("malformed", kind, "-", tok, query=True))
    return m
