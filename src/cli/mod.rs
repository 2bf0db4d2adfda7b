//! The host-side command: `check` policies and Istio manifests with the filter's exact parser,
//! `render` them as Istio `WasmPlugin`s or an Envoy filter block, mint a dev `token`.
//! Built only with the `cli` feature (`cargo build --release --features cli`). Files depend on
//! `docs` and `flags` only; this one dispatches.

use std::fmt::Write as _;

mod check;
mod docs;
mod explain;
mod flags;
mod render;
mod token;
mod yaml11;

const USAGE: &str = "\
usage:
  jwt-policy check FILE...
      Validate JWTPolicy resources (and the pluginConfig of WasmPlugin resources) in YAML or
      JSON files with the filter's own rules. Exit 1 on any error.
  jwt-policy render --istio [--namespace NS] [--selector KEY=VALUE]... [--gateway] [--image URL]
                    [--mode SERVER|CLIENT|UNDEFINED] FILE...
      Istio WasmPlugin manifests, one per phase present (preAuthz -> AUTHZ, postAuthz -> STATS),
      each with every policy (the oldest selecting policy governs; each plugin enforces it only in
      its phase). Sidecar plugins match SERVER traffic unless --mode says otherwise; gateway
      plugins match all. A policy selecting routes by labels or namespace is refused: Istio puts
      no such route metadata in Envoy; select the VirtualService http route by `name`.
  jwt-policy render --envoy [--wasm PATH] [--ca-file PEM_FILE] FILE...
      An Envoy http_filters block (the wasm filter, then the router) and a cluster per remote JWKS.
      An https JWKS cluster verifies the server's certificate against --ca-file (default the
      system bundle /etc/ssl/certs/ca-certificates.crt) and its SAN against the URL's host.
  jwt-policy explain FILE... [--token T] [--header NAME:VALUE]... [--path /p?q] [--method M]
                     [--host H] [--route-name NAME] [--route-label K=V]... [--route-namespace NS]
                     [--cluster NAME] [--jwks FILE | --jwks PROVIDER=FILE]... [--fetch]
                     [--now UNIX_SECONDS] [--json]
      What the filter would do with this request, step by step, with the filter's own decision:
      which policy governs and why, each token and where it was found, for each provider the
      issuer, time, audience, key choice and signature, the rules, then the reply or the headers
      the upstream sees. --token goes where the governing policy's first provider looks first.
      Remote keys come from --jwks or, with --fetch, from the provider's URL. Exit 0 when the
      request would pass, 1 when it would be denied.
  jwt-policy token --key PEM_FILE | --secret TEXT [--alg ALG] [--kid KID] [--exp DURATION]
                   [--claim NAME=VALUE]... [--claims JSON]
      Sign a development token (RS256/384/512, ES256/384, EdDSA, HS256/384/512).
";

/// Runs the command; returns the exit code.
pub fn run(args: &[String], out: &mut String, err: &mut String) -> i32 {
    let result = match args.first().map(String::as_str) {
        Some("check") => check::check(args.get(1..).unwrap_or_default(), out),
        Some("render") => render::render(args.get(1..).unwrap_or_default(), out),
        Some("token") => token::token(args.get(1..).unwrap_or_default(), out),
        Some("explain") => explain::explain(args.get(1..).unwrap_or_default(), out),
        Some("help" | "--help" | "-h") => {
            out.push_str(USAGE);
            Ok(true)
        }
        _ => Err(format!("unknown command\n{USAGE}")),
    };
    match result {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            let _ = writeln!(err, "jwt-policy: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::docs::to_json;
    use super::*;
    use crate::policy::Phase;
    use serde_json::Value;
    use yaml_rust2::YamlLoader;

    fn run_args(args: &[&str]) -> (i32, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (mut out, mut err) = (String::new(), String::new());
        let code = run(&args, &mut out, &mut err);
        (code, out, err)
    }

    fn temp(name: &str, text: &str) -> String {
        let dir = std::env::temp_dir().join(format!("jwt-policy-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn checks_the_shipped_policy_and_names_the_path_of_an_error() {
        let (code, out, _) = run_args(&["check", "policies/dev-example.yaml"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("ok (1 checked)"));
        let broken = std::fs::read_to_string("policies/dev-example.yaml")
            .unwrap()
            .replace("issuer:", "issuerr:");
        let path = temp("broken.yaml", &broken);
        let (code, out, _) = run_args(&["check", &path]);
        assert_eq!(code, 1);
        assert!(out.contains("JWTPolicy httpbin/jwt-policy): spec.config.providers.dev-example.issuerr: unknown field"), "{out}");
    }

    /// The guide's policy, selecting the VirtualService http route by name (the Istio way).
    fn by_route_name() -> String {
        std::fs::read_to_string("policies/dev-example.yaml")
            .unwrap()
            .replace("labels:\n        route: httpbin", "name: httpbin-mesh")
    }

    #[test]
    fn renders_one_wasmplugin_per_phase_with_negated_priority() {
        let first = by_route_name();
        assert!(!first.contains("labels"));
        let post = first
            .replace("name: jwt-policy", "name: late")
            .replace("preAuthz: {}", "postAuthz:\n        priority: 3");
        let path = temp("two.yaml", &format!("{first}\n---\n{post}"));
        // Route names exist in the callers' sidecars: on httpbin's inbound side (the sidecar
        // default, SERVER) nothing but Istio's `default` route is there (review 4).
        let render = |mode: &[&str]| {
            let sidecar = [
                "render",
                "--istio",
                "--namespace",
                "httpbin",
                "--selector",
                "app=httpbin",
            ];
            run_args(&[&sidecar[..], mode, &[path.as_str()]].concat())
        };
        let (code, _, err) = render(&[]);
        assert_eq!(code, 2);
        assert!(
            err.contains("selects routes by name") && err.contains("match SERVER"),
            "{err}"
        );
        let (code, _, err) = render(&["--mode", "UNDEFINED"]);
        assert_eq!(code, 2, "{err}");
        let (code, out, err) = render(&["--mode", "CLIENT"]);
        assert_eq!(code, 0, "{err}");
        let docs: Vec<Value> = YamlLoader::load_from_str(&out)
            .unwrap()
            .iter()
            .map(to_json)
            .collect();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["spec"]["phase"], "AUTHZ");
        assert_eq!(docs[1]["spec"]["phase"], "STATS");
        assert_eq!(docs[1]["spec"]["priority"], -3);
        assert_eq!(docs[0]["spec"]["failStrategy"], "FAIL_CLOSE");
        assert_eq!(docs[0]["spec"]["selector"]["matchLabels"]["app"], "httpbin");
        assert_eq!(docs[0]["spec"]["match"][0]["mode"], "CLIENT");
        assert_eq!(docs[0]["spec"]["type"], "HTTP");
        let config = docs[0]["spec"]["pluginConfig"].to_string();
        let compiled = crate::config::parse(config.as_bytes()).unwrap();
        assert_eq!(compiled.settings.phase, Some(Phase::PreAuthz));
        // each phase's plugin sees every policy, so both agree on the governing one
        for doc in &docs {
            assert_eq!(
                doc["spec"]["pluginConfig"]["policies"]
                    .as_array()
                    .unwrap()
                    .len(),
                2
            );
        }
    }

    #[test]
    fn both_renders_carry_the_dry_run_mark_through() {
        let marked = by_route_name().replace(
            "  namespace: httpbin\nspec:",
            "  namespace: httpbin\n  annotations:\n    jwt-policy/dry-run: \"true\"\nspec:",
        );
        assert!(marked.contains("jwt-policy/dry-run"));
        let path = temp("dry-run.yaml", &marked);
        for (args, pointer) in [
            (
                vec!["render", "--istio", "--gateway", &path],
                "/spec/pluginConfig",
            ),
            (vec!["render", "--envoy", &path], ""),
        ] {
            let (code, out, err) = run_args(&args);
            assert_eq!(code, 0, "{err}");
            let doc = to_json(&YamlLoader::load_from_str(&out).unwrap()[0]);
            let config = if pointer.is_empty() {
                doc["http_filters"][0]["typed_config"]["config"]["configuration"]["value"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            } else {
                doc.pointer(pointer).unwrap().to_string()
            };
            let compiled = crate::config::parse(config.as_bytes()).unwrap();
            assert!(compiled.policies[0].dry_run, "{args:?}");
        }
    }

    #[test]
    fn render_istio_and_check_refuse_route_label_selectors() {
        let (code, _, err) = run_args(&["render", "--istio", "policies/dev-example.yaml"]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("spec.applyToRoutes[0].route.labels: Istio carries no route labels"),
            "{err}"
        );
        assert!(err.contains("by `name`"), "{err}");
        let labelled = std::fs::read_to_string("policies/dev-example.json").unwrap();
        let plugin = format!(
            r#"{{"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin", "metadata": {{"name": "p"}}, "spec": {{"url": "oci://x", "pluginConfig": {{"policies": [{labelled}]}}}}}}"#
        );
        let (code, out, _) = run_args(&["check", &temp("plugin.json", &plugin)]);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("policies[0].spec.applyToRoutes[0].route.labels"),
            "{out}"
        );
        let (code, out, _) = run_args(&["check", &temp("named.yaml", &by_route_name())]);
        assert_eq!(code, 0, "{out}");
    }

    #[test]
    fn renders_an_envoy_block_with_clusters_for_remote_keys() {
        let remote = r#"{"kind": "JWTPolicy", "metadata": {"name": "r"}, "spec": {"config": {"providers": {"idp": {"remote": {"url": "https://idp.example.com/jwks"}}}}}}"#;
        let path = temp("remote.json", remote);
        let (code, out, err) = run_args(&["render", "--envoy", "--wasm", "/x.wasm", &path]);
        assert_eq!(code, 0, "{err}");
        let doc = to_json(&YamlLoader::load_from_str(&out).unwrap()[0]);
        assert_eq!(doc["clusters"][0]["name"], "outbound|443||idp.example.com");
        let tls = &doc["clusters"][0]["transport_socket"]["typed_config"];
        assert_eq!(tls["sni"], "idp.example.com");
        let validation = &tls["common_tls_context"]["validation_context"];
        assert_eq!(
            validation["trusted_ca"]["filename"],
            "/etc/ssl/certs/ca-certificates.crt"
        );
        assert_eq!(
            validation["match_typed_subject_alt_names"][0],
            serde_json::json!({"san_type": "DNS", "matcher": {"exact": "idp.example.com"}})
        );
        let (_, out, _) = run_args(&["render", "--envoy", "--ca-file", "/ca.pem", &path]);
        let doc = to_json(&YamlLoader::load_from_str(&out).unwrap()[0]);
        assert_eq!(
            doc["clusters"][0]["transport_socket"]["typed_config"]["common_tls_context"]["validation_context"]
                ["trusted_ca"]["filename"],
            "/ca.pem"
        );
        let value = doc["http_filters"][0]["typed_config"]["config"]["configuration"]["value"]
            .as_str()
            .unwrap();
        assert!(crate::config::parse(value.as_bytes()).is_ok());
    }

    #[test]
    fn usage_errors_exit_2() {
        assert_eq!(run_args(&["frobnicate"]).0, 2);
        assert_eq!(run_args(&["render", "policies/dev-example.yaml"]).0, 2);
        assert_eq!(run_args(&["check"]).0, 2);
    }

    // ---- review 6 ----

    /// Review 6, finding 5. Istio installs a WasmPlugin in a gateway only when its `match`
    /// is CLIENT, CLIENT_AND_SERVER or unset (`workloadModeForListenerClass`: a gateway's
    /// listeners are of mode CLIENT; a waypoint's are SERVER). `render --istio --gateway
    /// --mode SERVER` writes `match: [{mode: SERVER}]` for the gateway: the plugin is never
    /// installed there, and every route of the gateway passes untouched.
    #[test]
    fn review6_render_refuses_a_gateway_plugin_that_istio_never_installs() {
        let path = temp("review6-gw.yaml", &by_route_name());
        let (code, out, err) =
            run_args(&["render", "--istio", "--gateway", "--mode", "SERVER", &path]);
        assert_ne!(
            code, 0,
            "rendered a gateway plugin with match SERVER:\n{out}{err}"
        );
    }

    /// Review 6, finding 5 (check). The same WasmPlugin, written by hand, is approved.
    #[test]
    fn review6_check_refuses_a_gateway_plugin_matching_server() {
        let policy = std::fs::read_to_string("policies/dev-example.json").unwrap();
        let policy: Value = serde_json::from_str(&policy).unwrap();
        let mut policy = policy;
        policy["spec"]["applyToRoutes"] =
            serde_json::json!([{"route": {"name": "httpbin-ingress"}}]);
        let plugin = serde_json::json!({
            "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
            "metadata": {"name": "jwt-policy-ingress", "namespace": "istio-system"},
            "spec": {"selector": {"matchLabels": {"istio": "ingressgateway"}},
                "url": "oci://x", "phase": "AUTHZ", "failStrategy": "FAIL_CLOSE",
                "match": [{"mode": "SERVER"}],
                "pluginConfig": {"policies": [policy], "settings": {"phase": "preAuthz"}}}
        });
        let (code, out, _) = run_args(&["check", &temp("review6-gw.json", &plugin.to_string())]);
        assert_eq!(
            code, 1,
            "approved a gateway plugin Istio never installs: {out}"
        );
    }

    /// Review 6, finding 6. YAML 1.1 merge keys (`<<`), which Kubernetes' YAML reader
    /// (sigs.k8s.io/yaml, go-yaml v2) applies, are a plain key `<<` to the CLI; in
    /// `metadata`, where unknown keys are ignored, `check` reads an enforcing policy while
    /// the filter Istio configures from the same file runs it as a dry run (never denies).
    #[test]
    fn review6_check_does_not_ignore_a_yaml_merge_key() {
        let policy = std::fs::read_to_string("policies/dev-example.json").unwrap();
        let mut policy: Value = serde_json::from_str(&policy).unwrap();
        policy["spec"]["applyToRoutes"] = serde_json::json!([{"route": {"name": "httpbin-mesh"}}]);
        let spec = serde_json::to_string(&policy["spec"]).unwrap();
        let yaml = format!(
            "x-meta: &meta\n  annotations:\n    jwt-policy/dry-run: \"true\"\n\
             apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\n\
             metadata: {{name: p, namespace: istio-system}}\n\
             spec:\n  url: oci://x\n  phase: AUTHZ\n  failStrategy: FAIL_CLOSE\n  match: [{{mode: CLIENT}}]\n\
             \x20 pluginConfig:\n    policies:\n    - kind: JWTPolicy\n      metadata:\n        <<: *meta\n        name: p\n\
             \x20     spec: {spec}\n    settings: {{phase: preAuthz}}\n"
        );
        let path = temp("review6-merge.yaml", &yaml);
        let e = super::docs::load(&path).unwrap_err();
        assert!(
            e.contains("spec.pluginConfig.policies[0].metadata.<<: a YAML merge key"),
            "{e}"
        );
        let (code, out, err) = run_args(&["check", &path]);
        assert_ne!(
            code, 0,
            "check approved a policy Kubernetes reads as a dry run while the CLI reads it as enforced: {out}"
        );
        assert!(
            out.contains("merge key") || err.contains("merge key"),
            "{out}{err}"
        );
    }

    /// YAML 1.1 (Kubernetes) reads `0443` as octal 291, YAML 1.2 (this command) as 443: a port
    /// `check` approved would not be the one that runs. Refused with where it is; quoted, or
    /// in a JSON document (where leading zeros are not numbers at all), nothing changes.
    #[test]
    fn check_refuses_a_yaml_number_kubernetes_reads_otherwise() {
        let doc = |number: &str| {
            format!(
                "kind: JWTPolicy\nmetadata: {{name: p, namespace: ns}}\nspec:\n  \
                 applyToDestinations:\n  - selector: {{name: web}}\n    port:\n      number: {number}\n  \
                 config:\n    providers:\n      p:\n        remote: {{url: 'https://idp.example.com/jwks'}}\n"
            )
        };
        for (number, says) in [
            (
                "0443",
                "Kubernetes (YAML 1.1) reads the number 291 and this command (YAML 1.2) the number 443",
            ),
            ("-012", "the number -10"),
            ("+0443", "the number 291"),
            (
                "1_000",
                "reads the number 1000 and this command (YAML 1.2) the string \"1_000\"",
            ),
        ] {
            let path = temp("leading-zero.yaml", &doc(number));
            let e = super::docs::load(&path).unwrap_err();
            assert!(
                e.contains("line 7 column 15") && e.contains(says),
                "{number}: {e}"
            );
            let (code, out, err) = run_args(&["check", &path]);
            assert_ne!(code, 0, "{number}");
            assert!(
                out.contains(number) || err.contains(number),
                "{number}: {out}{err}"
            );
        }
        // Both read these alike (Go's ParseInt takes `0o`; `08080` is the float 8080 there).
        for fine in [
            "443", "0", "'0443'", "\"0443\"", "-1", "0x1bb", "0o443", "08080",
        ] {
            let path = temp("leading-zero-ok.yaml", &doc(fine));
            assert!(super::docs::load(&path).is_ok(), "{fine}");
        }
    }
}
