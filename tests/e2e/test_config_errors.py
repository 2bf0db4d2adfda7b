"""Plugin configurations: the three accepted shapes load; invalid ones are refused.

Refusal = ``on_configure`` returns false.  Envoy 1.40 then treats the wasm filter as
failed to load ("fail closed"): at startup it logs
``wasm log jwt_policy_filter: invalid configuration: <json path>: <reason>`` (error),
``Plugin jwt_policy failed to load`` and exits with status 1 ("Unable to create Wasm
plugin jwt_policy").  The filter never panics on a configuration.
"""

from __future__ import annotations

import json
import re

import pytest

import harness
from jwtmint import b64url, claims, mint, rsa_public_pem, shared_key
from support import DEV_EXAMPLE_JSON, ISSUER, MISSING, assert_denied, assert_passed, bearer, demo_token

KEY = shared_key("RS256", kid="config-1")
PEM = KEY.public_pem()
GOOD_PROVIDER = {"issuer": ISSUER, "local": {"inline": PEM}}
TOKEN = mint(KEY, claims(iss=ISSUER, sub="alice"))


def spec_with(provider: dict | None = None, **config) -> dict:
    return {"config": {"providers": {"p": provider if provider is not None else GOOD_PROVIDER}, **config}}


def resource(spec: dict, name: str = "jwt-policy") -> dict:
    return {"apiVersion": "security.policy.gloo.solo.io/v2", "kind": "JWTPolicy",
            "metadata": {"name": name, "namespace": "httpbin"}, "spec": spec}


def refused(config) -> str:
    """Boot Envoy with ``config``; assert it refused to start; return its log."""
    code, log = harness.run_until_exit(config, name="refused")
    assert code is not None, "Envoy became ready with an invalid configuration:\n" + log[-3000:]
    assert code == 1, log[-3000:]
    assert "Unable to create Wasm plugin jwt_policy" in log
    assert "panicked" not in log, log[-3000:]
    return log


def config_errors(log: str) -> list[str]:
    return [line.split("invalid configuration: ", 1)[1] for line in log.splitlines()
            if "invalid configuration: " in line]


def assert_reason(log: str, pattern: str) -> None:
    errors = config_errors(log)
    assert any(re.match(pattern, e) for e in errors), f"no config error matches {pattern!r}: {errors}\n{log[-2000:]}"


# --------------------------------------------------------------------------- accepted shapes


@pytest.mark.parametrize("shape", ["spec", "resource", "policies-of-resources", "policies-of-specs"])
def test_every_shape_loads_and_enforces(envoy, shape):
    spec = spec_with()
    config = {
        "spec": spec,
        "resource": resource(spec),
        "policies-of-resources": {"policies": [resource(spec)], "settings": {"routeLabelsNamespace": "jwt_policy"}},
        "policies-of-specs": {"policies": [spec]},
    }[shape]
    proxy = envoy(config)
    assert_denied(proxy.get("/get"), MISSING)
    assert_passed(proxy.get("/get", headers=bearer(TOKEN)))


def test_guide_resource_inside_policies_list(envoy):
    proxy = envoy({"policies": [json.loads(DEV_EXAMPLE_JSON.read_text())]})
    assert_passed(proxy.get(f"/get?auth_token={demo_token()}"))


def test_config_may_carry_a_creation_timestamp(envoy):
    res = resource(spec_with())
    res["metadata"]["creationTimestamp"] = "2024-01-02T03:04:05Z"
    assert_passed(envoy(res).get("/get", headers=bearer(TOKEN)))


# --------------------------------------------------------------------------- refused, with the path and reason


@pytest.mark.parametrize("url", ["not-a-url", "ftp://jwks.example.com/keys", "/relative/jwks.json", "http://"])
def test_bad_remote_url(url):
    config = {"policies": [resource({"config": {"providers": {"dev-example": {"remote": {"url": url}}}}})]}
    log = refused(config)
    assert_reason(log, re.escape("policies[0].spec.config.providers.dev-example.remote.url: not an absolute http(s) URL"))


def test_error_is_logged_at_error_level():
    log = refused(spec_with({"bogus": 1, **GOOD_PROVIDER}))
    line = next(line for line in log.splitlines() if "invalid configuration: " in line)
    assert "[error]" in line or "[critical]" in line, line


@pytest.mark.parametrize("config,path", [
    (spec_with({"bogus": 1, **GOOD_PROVIDER}), "config.providers.p.bogus"),
    (spec_with(claimsToHeaders_typo=[]), "config.claimsToHeaders_typo"),
    (spec_with({**GOOD_PROVIDER, "local": {"inline": PEM, "file": "/etc/key.pem"}}), "config.providers.p.local.file"),
    (spec_with({**GOOD_PROVIDER, "tokenSource": {"header": []}}), "config.providers.p.tokenSource.header"),
    (resource(spec_with({"bogus": 1, **GOOD_PROVIDER})), "spec.config.providers.p.bogus"),
    ({"policies": [spec_with()], "settings": {"bogus": True}}, "settings.bogus"),
], ids=["provider", "config", "local", "tokenSource", "resource-shape", "settings"])
def test_unknown_field(config, path):
    assert_reason(refused(config), re.escape(f"{path}: unknown field"))


@pytest.mark.parametrize("config,path", [
    (spec_with({"issuer": ISSUER}), "config.providers.p"),
    (resource(spec_with({"issuer": ISSUER})), "spec.config.providers.p"),
    ({"policies": [resource(spec_with({}))]}, "policies[0].spec.config.providers.p"),
], ids=["spec", "resource", "policies"])
def test_provider_needs_local_or_remote(config, path):
    assert_reason(refused(config), re.escape(f"{path}: needs one of local or remote"))


@pytest.mark.parametrize("config,path", [
    ({"config": {"providers": {}}}, "config.providers"),
    ({"config": {}}, "config.providers"),
    (spec_with({**GOOD_PROVIDER, "issuer": 5}), "config.providers.p.issuer"),
    (spec_with({**GOOD_PROVIDER, "audiences": "api"}), "config.providers.p.audiences"),
    (spec_with({**GOOD_PROVIDER, "keepToken": "yes"}), "config.providers.p.keepToken"),
    (spec_with({**GOOD_PROVIDER, "clockSkewSeconds": "60s"}), "config.providers.p.clockSkewSeconds"),
    (spec_with({**GOOD_PROVIDER, "local": {"inline": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}}),
     "config.providers.p.local.inline"),
    (spec_with({**GOOD_PROVIDER, "local": {"inline": "not a key at all"}}), "config.providers.p.local.inline"),
    (spec_with({**GOOD_PROVIDER, "local": {"inline": '{"keys": 5}'}}), "config.providers.p.local.inline"),
    (spec_with({"remote": {"url": "https://idp.example.com/jwks", "cacheDuration": "soon"}}),
     "config.providers.p.remote.cacheDuration"),
    (spec_with({"remote": {"url": "https://idp.example.com/jwks", "timeout": "5 parsecs"}}),
     "config.providers.p.remote.timeout"),
    (spec_with(validationPolicy="SOMETIMES"), "config.validationPolicy"),
    (spec_with({**GOOD_PROVIDER, "tokenSource": {"headers": [{"prefix": "Bearer "}]}}),
     "config.providers.p.tokenSource.headers[0]"),
    (spec_with({**GOOD_PROVIDER, "claimsToHeaders": [{"claim": "org"}]}), "config.providers.p.claimsToHeaders[0]"),
    (spec_with({**GOOD_PROVIDER, "claimsToHeaders": [{"claim": "email", "header": "Transfer-Encoding"}]}),
     "config.providers.p.claimsToHeaders[0].header"),
    (spec_with({**GOOD_PROVIDER, "claimsToHeaders": [{"claim": "name", "header": "x-envoy-upstream-rq-timeout-ms"}]}),
     "config.providers.p.claimsToHeaders[0].header"),
    ({"policies": [spec_with()], "settings": {"phase": "duringAuthz"}}, "settings.phase"),
    ({"policies": {"a": spec_with()}}, "policies"),
], ids=["empty-providers", "no-providers", "issuer-type", "audiences-type", "keepToken-type", "skew-type",
        "bad-pem-body", "not-a-key", "jwks-keys-type", "bad-cacheDuration", "bad-timeout",
        "bad-validationPolicy", "header-without-name", "claim-without-header", "claim-to-framing-header", "claim-to-x-envoy-header",
        "bad-settings-phase",
        "policies-not-a-list"])
def test_invalid_value(config, path):
    assert_reason(refused(config), re.escape(path) + r"(\.|\[|:)")


def test_secret_ref_is_refused_naming_inline_and_remote():
    log = refused(spec_with({"issuer": ISSUER, "local": {"secretRef": {"name": "jwks", "namespace": "x"}}}))
    errors = [e for e in config_errors(log) if e.startswith("config.providers.p.local.secretRef")]
    assert errors, config_errors(log)
    assert "inline" in errors[0] and "remote" in errors[0], errors[0]


@pytest.mark.parametrize("config", ["this is not json", "", "null", "[]", '"a string"', "42", '{"config": null}',
                                    '{"policies": [null]}', '{"config": {"providers": {"p": null}}}',
                                    '{"config": {"providers": {"p": {"local": {"inline": null}}}}}',
                                    "[" * 10_000 + "]" * 10_000, '{"config": ' * 5_000 + "{}" + "}" * 5_000],
                         ids=["prose", "empty", "null", "list", "string", "number", "config-null", "policy-null",
                              "provider-null", "inline-null", "deep-list", "deep-object"])
def test_garbage_configuration_is_refused_without_panic(config):
    log = refused(config)
    assert config_errors(log), log[-2000:]


@pytest.mark.parametrize("e", [1, 5])
def test_inline_rsa_pem_with_an_exponent_other_than_3_or_65537_is_refused(e):
    """e = 1 would let anyone sign; like jwt_verify_lib only 3 and 65537 are accepted."""
    n = KEY.public_key().public_numbers().n
    log = refused(spec_with({**GOOD_PROVIDER, "local": {"inline": rsa_public_pem(n, e)}}))
    assert_reason(log, re.escape("config.providers.p.local.inline: ") + r".*RSA exponent \[e\] must be 3 or 65537")


def test_inline_jwks_whose_only_key_has_e_1_is_refused():
    n = KEY.public_key().public_numbers().n
    doc = json.dumps({"keys": [{"kty": "RSA", "n": b64url(n.to_bytes(256, "big")), "e": "AQ"}]})
    log = refused(spec_with({**GOOD_PROVIDER, "local": {"inline": doc}}))
    assert_reason(log, re.escape("config.providers.p.local.inline: ") +
                  re.escape("not a usable PEM public key or JWKS: Jwks doesn't have any valid public key (keys[0]: "
                            "RSA exponent [e] must be 3 or 65537)"))
