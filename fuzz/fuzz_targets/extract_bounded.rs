//! Token extraction over arbitrary header maps and paths: it never panics, finds at most the
//! token limit, and the work it does (`extract::Work`, every byte it compares, decodes or
//! searches) stays within a constant factor of the request's size, the factor set by the policy.
//! The removal helpers (query parameters, cookies) run on the same input.
//!
//! Input: NUL-separated chunks; the first is the `:path`, then header name / value pairs. A
//! name of at most one byte picks one of the names the policy looks at, so the fuzzer reaches
//! them without having to spell them.
#![no_main]
use jwt_policy_filter::config;
use jwt_policy_filter::extract::{self, Header, Location, Work};
use jwt_policy_filter::policy::Policy;
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 4;
const NAMES: [&str; 7] = ["authorization", "x-auth", "prefix-header", "x-jwt", "cookie", "Cookie", "other"];

thread_local! {
    static POLICY: Policy = build_policy();
}

fn build_policy() -> Policy {
    let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
    let doc = serde_json::json!({
        "policies": [{"config": {"providers": {
            "defaults": {"local": {"inline": pem}},
            "same": {"local": {"inline": pem}},
            "others": {"local": {"inline": pem}, "tokenSource": {
                "headers": [{"name": "x-auth", "prefix": "Bearer "}, {"name": "prefix-header", "prefix": "CCCDDD"},
                            {"name": "x-jwt"}, {"name": "authorization", "prefix": "aaaaaaaa"}],
                "queryParams": ["t", "access_token", "a%b"],
                "cookies": ["jwt", "session"]}}}}}],
        "settings": {"limits": {"maxTokensPerRequest": LIMIT}}});
    let mut c = config::parse(doc.to_string().as_bytes()).unwrap_or_else(|_| std::process::abort());
    c.policies.remove(0)
}

/// The factor of the bound: every configured location times what one byte may cost there (a
/// prefix search compares up to the prefix's length per byte; a token is compared with up to
/// LIMIT tokens found before), plus one pass per distinct parameter / cookie name.
fn factor(policy: &Policy) -> usize {
    let max_prefix = policy.providers.iter().flat_map(|p| &p.headers).map(|h| h.prefix.len()).max().unwrap_or(0);
    let locations: usize =
        policy.providers.iter().map(|p| p.headers.len() + p.query_params.len() + p.cookies.len()).sum();
    let names: usize = policy.providers.iter().map(|p| p.query_params.len() + p.cookies.len()).sum();
    locations * (max_prefix + 2 * (LIMIT + 2)) + names + 8
}

fuzz_target!(|data: &[u8]| {
    let mut chunks = data.split(|&b| b == 0);
    let path = chunks.next().unwrap_or_default().to_vec();
    let mut headers: Vec<Header> = vec![(":path".into(), path.clone())];
    while let (Some(name), Some(value)) = (chunks.next(), chunks.next()) {
        let name = match name {
            [] => NAMES[0].to_owned(),
            [b] => NAMES[usize::from(*b) % NAMES.len()].to_owned(),
            long => String::from_utf8_lossy(long).to_ascii_lowercase(),
        };
        headers.push((name, value.to_vec()));
    }
    let size: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 1).sum();

    POLICY.with(|policy| {
        let mut work = Work::default();
        let result = extract::extract_metered(policy, &headers, &path, &mut work);
        let bound = factor(policy) * (size + 1);
        assert!(work.bytes <= bound, "work {} over the bound {bound} for {size} bytes", work.bytes);
        let Ok(found) = result else { return };
        assert!(found.len() <= LIMIT);
        for (i, f) in found.iter().enumerate() {
            assert!(!f.providers.is_empty());
            assert!(f.providers.windows(2).all(|w| w[0] < w[1]), "providers once each, in order");
            assert!(found[..i].iter().all(|g| (&g.location, &g.token) != (&f.location, &f.token)));
            for &p in &f.providers {
                let provider = &policy.providers[p];
                let here = match &f.location {
                    Location::Header(n) => provider.headers.iter().any(|h| &h.name == n),
                    Location::Query(n) => provider.query_params.contains(n),
                    Location::Cookie(n) => provider.cookies.contains(n),
                };
                assert!(here, "{:?} is not a location of provider {p}", f.location);
            }
        }
        let params: Vec<&str> = found
            .iter()
            .filter_map(|f| if let Location::Query(n) = &f.location { Some(n.as_str()) } else { None })
            .collect();
        let stripped = extract::remove_query_params(&path, &params);
        assert!(stripped.len() <= path.len());
        let cookies: Vec<&str> = found
            .iter()
            .filter_map(|f| if let Location::Cookie(n) = &f.location { Some(n.as_str()) } else { None })
            .collect();
        if !cookies.is_empty() {
            // Pieces are joined with "; ": `a;b` becomes `a; b`, at most twice as long.
            let cookie_bytes: usize =
                headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("cookie")).map(|(_, v)| 2 * (v.len() + 1)).sum();
            let rest = extract::remove_cookies(&headers, &cookies).unwrap_or_default();
            assert!(rest.len() <= cookie_bytes);
        }
    });
});
