//! Where tokens are: the configured headers (with their prefix), query parameters and cookies
//! of every provider of the governing policy, and how to take a token out of the request again.
//!
//! Cost: one pass over the query and one over the `Cookie` headers keep only the parameters and
//! cookies some provider names (nothing is allocated for the others); the headers are looked at
//! once per configured header location. A token is compared with the tokens found so far, at
//! most `limits.max_tokens_per_request` of them, and extraction stops at the first token over
//! that limit. So the work is linear in the request's size, with factors set by the policy
//! ([`Work`] counts it).

use std::borrow::Cow;

use crate::policy::Policy;

/// A request header as the host hands it over: the name (lower-case in Envoy) and raw bytes.
pub type Header = (String, Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Lower-case header name.
    Header(String),
    Query(String),
    /// A cookie of the `Cookie` header(s), by its (case-sensitive) name.
    Cookie(String),
}

impl Location {
    fn is(&self, kind: Kind, name: &str) -> bool {
        match (self, kind) {
            (Location::Header(n), Kind::Header)
            | (Location::Query(n), Kind::Query)
            | (Location::Cookie(n), Kind::Cookie) => n == name,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Header,
    Query,
    Cookie,
}

impl Kind {
    fn at(self, name: &str) -> Location {
        let name = name.to_owned();
        match self {
            Kind::Header => Location::Header(name),
            Kind::Query => Location::Query(name),
            Kind::Cookie => Location::Cookie(name),
        }
    }
}

/// One token found, and the providers whose locations held it (indices into `policy.providers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub location: Location,
    pub token: String,
    pub providers: Vec<usize>,
}

/// More distinct tokens than `limits.max_tokens_per_request` (`Found multiple Jwt tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyTokens;

/// What one extraction examined: every byte compared, decoded or searched counts once per
/// time it is looked at. The bounded-work fuzz target checks it against the request's size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    pub bytes: usize,
}

impl Work {
    fn add(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_add(n);
    }
}

/// Every token in every location of every provider; the same token in the same location is
/// found once, with every provider that looks there. Fails as soon as more than the policy's
/// token limit are found.
pub fn extract(
    policy: &Policy,
    headers: &[Header],
    path: &[u8],
) -> Result<Vec<Found>, TooManyTokens> {
    extract_metered(policy, headers, path, &mut Work::default())
}

/// [`extract`], adding what it examined to `work`.
pub fn extract_metered(
    policy: &Policy,
    headers: &[Header],
    path: &[u8],
    work: &mut Work,
) -> Result<Vec<Found>, TooManyTokens> {
    let param_names = distinct(policy.providers.iter().flat_map(|p| &p.query_params));
    let cookie_names = distinct(policy.providers.iter().flat_map(|p| &p.cookies));
    let query = named_params(path, &param_names, work);
    let cookies = named_cookies(headers, &cookie_names, work);
    let mut found = Tokens {
        list: Vec::new(),
        limit: policy.limits.max_tokens_per_request,
        scratch: Vec::new(),
    };
    for (i, provider) in policy.providers.iter().enumerate() {
        for source in &provider.headers {
            for (name, value) in headers {
                work.add(name.len().min(source.name.len()));
                if !name.eq_ignore_ascii_case(&source.name) {
                    continue;
                }
                if let Some(token) = header_token(value, source.prefix.as_bytes(), work) {
                    found.push(Kind::Header, &source.name, token, i, work)?;
                }
            }
        }
        for param in &provider.query_params {
            // The same raw value again (a repeated parameter) is already found for `i`.
            let mut last: Option<&[u8]> = None;
            for (name, raw) in &query {
                if name != param || last == Some(*raw) {
                    continue;
                }
                last = Some(raw);
                let mut scratch = std::mem::take(&mut found.scratch);
                let value = percent_decode(raw, &mut scratch, work);
                let pushed = found.push(Kind::Query, param, value, i, work);
                found.scratch = scratch;
                pushed?;
            }
        }
        for cookie in &provider.cookies {
            for (name, value) in &cookies {
                if name == cookie {
                    found.push(Kind::Cookie, cookie, value, i, work)?;
                }
            }
        }
    }
    Ok(found.list)
}

/// The tokens found so far, never more than `limit`.
struct Tokens {
    list: Vec<Found>,
    limit: usize,
    /// A reused buffer for percent-decoded query values.
    scratch: Vec<u8>,
}

impl Tokens {
    fn push(
        &mut self,
        kind: Kind,
        name: &str,
        token: &[u8],
        provider: usize,
        work: &mut Work,
    ) -> Result<(), TooManyTokens> {
        let token = text(token);
        for f in &mut self.list {
            work.add(token.len().min(f.token.len()).max(1));
            if f.token == token && f.location.is(kind, name) {
                if !f.providers.contains(&provider) {
                    f.providers.push(provider);
                }
                return Ok(());
            }
        }
        if self.list.len() >= self.limit {
            return Err(TooManyTokens);
        }
        work.add(token.len());
        self.list.push(Found {
            location: kind.at(name),
            token: token.into_owned(),
            providers: vec![provider],
        });
        Ok(())
    }
}

fn distinct<'a>(names: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for name in names {
        if !out.contains(&name.as_str()) {
            out.push(name);
        }
    }
    out
}

/// As `jwt_authn` (`extractJWT`): without a prefix the whole value is the token; with one, a
/// value that does not contain it (case-sensitive, anywhere) holds no token, else the token is
/// the rest of the value from the first base64url character after the prefix (a `.` is
/// skipped too: `Bearer .<t>` holds `<t>`, as `jwt_authn` reads it), to the
/// end of the value; when there is no such character the whole value is the token.
fn header_token<'v>(value: &'v [u8], prefix: &[u8], work: &mut Work) -> Option<&'v [u8]> {
    if prefix.is_empty() {
        return Some(value);
    }
    let at = find(value, prefix, work)?;
    let after = value
        .get(at.saturating_add(prefix.len())..)
        .unwrap_or_default();
    let start = after.iter().position(|&b| is_token_char(b));
    work.add(start.map_or(after.len(), |s| s.saturating_add(1)));
    match start {
        Some(s) => after.get(s..),
        None => Some(value),
    }
}

/// RFC 4648 §5 base64url (SPEC §1: where the token starts).
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')
}

/// The first position of `needle` in `hay` (not empty), counting every byte compared.
fn find(hay: &[u8], needle: &[u8], work: &mut Work) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(rest) = hay.get(from..) {
        let Some(i) = rest.iter().position(|&b| b == first) else {
            work.add(rest.len());
            return None;
        };
        work.add(i.saturating_add(1));
        let at = from.saturating_add(i);
        let candidate = hay.get(at..)?;
        if candidate.len() < needle.len() {
            return None;
        }
        let same = candidate
            .iter()
            .zip(needle)
            .skip(1)
            .take_while(|(a, b)| a == b)
            .count();
        work.add(same.saturating_add(1));
        if same.saturating_add(1) == needle.len() {
            return Some(at);
        }
        from = at.saturating_add(1);
    }
    None
}

/// The query of a `:path`, without what follows a `#`.
fn query_of(path: &[u8]) -> Option<&[u8]> {
    let start = path.iter().position(|&b| b == b'?')?;
    let query = path.get(start.saturating_add(1)..).unwrap_or_default();
    query.split(|&b| b == b'#').next()
}

/// One pass over the query: the raw values of the parameters whose percent-decoded name is one
/// of `names`, with that name, in order. `name` alone (no `=`) has the empty value, as in
/// `jwt_authn`.
fn named_params<'p, 'n>(
    path: &'p [u8],
    names: &[&'n str],
    work: &mut Work,
) -> Vec<(&'n str, &'p [u8])> {
    let mut out = Vec::new();
    if names.is_empty() {
        return out;
    }
    let Some(query) = query_of(path) else {
        return out;
    };
    work.add(query.len());
    for kv in query.split(|&b| b == b'&').filter(|kv| !kv.is_empty()) {
        let (key, value) = split_once(kv, b'=');
        if let Some(name) = names.iter().find(|n| decoded_eq(key, n, work)) {
            out.push((*name, value));
        }
    }
    out
}

fn split_once(bytes: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == sep) {
        Some(i) => (
            bytes.get(..i).unwrap_or_default(),
            bytes.get(i.saturating_add(1)..).unwrap_or_default(),
        ),
        None => (bytes, &[]),
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// The byte at `i` of a percent-encoded string, decoded, and how many input bytes it took.
fn decoded_at(input: &[u8], i: usize) -> Option<(u8, usize)> {
    let b = *input.get(i)?;
    if b == b'%'
        && let (Some(h), Some(l)) = (
            input.get(i.saturating_add(1)).copied().and_then(hex),
            input.get(i.saturating_add(2)).copied().and_then(hex),
        )
    {
        return Some((h.wrapping_mul(16).wrapping_add(l), 3));
    }
    Some((b, 1))
}

/// Whether `raw`, percent-decoded (`+` stays `+`), is `name`.
fn decoded_eq(raw: &[u8], name: &str, work: &mut Work) -> bool {
    work.add(raw.len());
    let name = name.as_bytes();
    if !raw.contains(&b'%') {
        return raw == name;
    }
    let (mut i, mut j) = (0, 0);
    while let Some((b, took)) = decoded_at(raw, i) {
        if name.get(j) != Some(&b) {
            return false;
        }
        i = i.saturating_add(took);
        j = j.saturating_add(1);
    }
    j == name.len()
}

/// `input` percent-decoded: borrowed when it has no `%`, else decoded into `out`.
fn percent_decode<'a>(input: &'a [u8], out: &'a mut Vec<u8>, work: &mut Work) -> &'a [u8] {
    work.add(input.len());
    if !input.contains(&b'%') {
        return input;
    }
    out.clear();
    out.reserve(input.len());
    let mut i = 0;
    while let Some((b, took)) = decoded_at(input, i) {
        out.push(b);
        i = i.saturating_add(took);
    }
    out
}

/// Bytes as text: borrowed when valid UTF-8 (the common case), else decoded lossily.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// The cookies of one `Cookie` header value, as `jwt_authn` (`forEachCookie`) reads them:
/// split on `;`, empty pieces skipped, the name from the first non-space to the first `=`
/// (a piece without `=` is no cookie), the value after it with one pair of surrounding
/// double quotes removed (RFC 6265 §4.1.1). Yields each piece (leading spaces cut) with its
/// cookie, if it is one.
fn cookie_pieces(value: &[u8]) -> impl Iterator<Item = (&[u8], Option<Cookie<'_>>)> {
    value
        .split(|&b| b == b';')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let start = piece.iter().position(|&b| b != b' ').unwrap_or(piece.len());
            let piece = piece.get(start..).unwrap_or_default();
            let cookie = piece.iter().position(|&b| b == b'=').map(|eq| {
                let name = piece.get(..eq).unwrap_or_default();
                let value = piece.get(eq.saturating_add(1)..).unwrap_or_default();
                let value = match value {
                    [b'"', inner @ .., b'"'] => inner,
                    v => v,
                };
                (name, value)
            });
            (piece, cookie)
        })
}

/// A cookie's name and value.
type Cookie<'a> = (&'a [u8], &'a [u8]);

fn is_cookie_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("cookie")
}

/// One pass over every `Cookie` header: the values of the cookies named in `names`, in order.
fn named_cookies<'h, 'n>(
    headers: &'h [Header],
    names: &[&'n str],
    work: &mut Work,
) -> Vec<(&'n str, &'h [u8])> {
    let mut out = Vec::new();
    if names.is_empty() {
        return out;
    }
    for (header, value) in headers {
        work.add(header.len().min(6));
        if !is_cookie_header(header) {
            continue;
        }
        work.add(value.len());
        for (_, cookie) in cookie_pieces(value) {
            let Some((name, value)) = cookie else {
                continue;
            };
            work.add(name.len());
            if let Some(n) = names.iter().find(|n| n.as_bytes() == name) {
                out.push((*n, value));
            }
        }
    }
    out
}

/// The `Cookie` header value to forward without the cookies named in `names` (all their
/// occurrences, in every `Cookie` header): the other pieces, verbatim, joined with `; ` into
/// one header (RFC 6265 §5.4). `None` when nothing is left.
pub fn remove_cookies(headers: &[Header], names: &[&str]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for (_, value) in headers.iter().filter(|(h, _)| is_cookie_header(h)) {
        for (piece, cookie) in cookie_pieces(value) {
            if cookie.is_some_and(|(name, _)| names.iter().any(|n| n.as_bytes() == name)) {
                continue;
            }
            if !out.is_empty() {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(piece);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `path` without the query parameters named in `names` (all their occurrences); every other
/// byte of the path and query is kept as it was.
pub fn remove_query_params(path: &[u8], names: &[&str]) -> Vec<u8> {
    let Some(start) = path.iter().position(|&b| b == b'?') else {
        return path.to_vec();
    };
    let (base, rest) = path.split_at(start);
    let rest = rest.get(1..).unwrap_or_default();
    let (query, fragment) = match rest.iter().position(|&b| b == b'#') {
        Some(i) => rest.split_at(i),
        None => (rest, &[][..]),
    };
    let mut work = Work::default();
    let mut out = base.to_vec();
    let mut first = true;
    for kv in query.split(|&b| b == b'&') {
        let (key, _) = split_once(kv, b'=');
        if kv.is_empty() || names.iter().any(|n| decoded_eq(key, n, &mut work)) {
            continue;
        }
        out.push(if first { b'?' } else { b'&' });
        first = false;
        out.extend_from_slice(kv);
    }
    out.extend(fragment);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use serde_json::{Value, json};

    const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";

    fn policy(token_sources: &[Value], limit: usize) -> Policy {
        let providers: serde_json::Map<String, Value> = token_sources
            .iter()
            .enumerate()
            .map(|(i, ts)| {
                let mut p = json!({"local": {"inline": PEM}});
                if !ts.is_null() {
                    p["tokenSource"] = ts.clone();
                }
                (format!("p{i}"), p)
            })
            .collect();
        let doc = json!({"policies": [{"config": {"providers": providers}}],
            "settings": {"limits": {"maxTokensPerRequest": limit}}});
        config::parse(doc.to_string().as_bytes())
            .unwrap()
            .policies
            .remove(0)
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<Header> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn tokens(p: &Policy, h: &[(&str, &str)], path: &str) -> Vec<(Location, String)> {
        extract(p, &headers(h), path.as_bytes())
            .unwrap()
            .into_iter()
            .map(|f| (f.location, f.token))
            .collect()
    }

    fn header(name: &str, token: &str) -> (Location, String) {
        (Location::Header(name.into()), token.into())
    }

    #[test]
    fn query_values_are_decoded_and_names_match_decoded() {
        let p = policy(&[Value::Null], 8);
        assert_eq!(
            tokens(
                &p,
                &[],
                "/get?a=1&access%5Ftoken=x%2Ey+z&&b#access_token=frag"
            ),
            vec![(Location::Query("access_token".into()), "x.y+z".into())]
        );
        assert!(tokens(&p, &[], "/plain").is_empty());
    }

    #[test]
    fn prefix_is_found_anywhere_and_the_token_runs_to_the_end() {
        let p = policy(
            &[json!({"headers": [{"name": "prefix-header", "prefix": "CCCDDD"}]})],
            8,
        );
        let got = |v: &str| tokens(&p, &[("prefix-header", v)], "/");
        assert_eq!(
            got("preamble CCCDDD=a.b.c"),
            vec![header("prefix-header", "a.b.c")]
        );
        assert_eq!(got("CCCDDD=a.b.c"), vec![header("prefix-header", "a.b.c")]);
        assert_eq!(
            got("preamble CCCDDD=a.b.c,extra=more"),
            vec![header("prefix-header", "a.b.c,extra=more")]
        );
        assert_eq!(got("cccddd=a.b.c"), vec![], "the prefix is case-sensitive");
        assert_eq!(got("CCCDD"), vec![]);
        assert_eq!(
            got("x CCCDDD= ,"),
            vec![header("prefix-header", "x CCCDDD= ,")],
            "no token character after the prefix: the whole value"
        );
        assert_eq!(
            got("CCCDCCCDDD==t"),
            vec![header("prefix-header", "t")],
            "a partial match does not hide a later one"
        );
        assert_eq!(
            got("CCCDDD=.a.b.c"),
            vec![header("prefix-header", "a.b.c")],
            "a `.` is not where a token starts (SPEC §1; jwt_authn reads it so)"
        );
    }

    #[test]
    fn empty_tokens_are_found_not_missing() {
        let p = policy(
            &[
                json!({"headers": [{"name": "x-jwt"}, {"name": "authorization", "prefix": "Bearer "}],
            "queryParams": ["access_token"]}),
            ],
            8,
        );
        assert_eq!(tokens(&p, &[("x-jwt", "")], "/"), vec![header("x-jwt", "")]);
        assert_eq!(
            tokens(&p, &[("authorization", "Bearer ")], "/"),
            vec![header("authorization", "Bearer ")]
        );
        assert_eq!(tokens(&p, &[("authorization", "Bearer")], "/"), vec![]);
        let q = |t: &str| vec![(Location::Query("access_token".into()), t.to_owned())];
        assert_eq!(tokens(&p, &[], "/?access_token="), q(""));
        assert_eq!(tokens(&p, &[], "/?access_token"), q(""));
    }

    #[test]
    fn one_token_in_one_location_is_found_once_for_every_provider() {
        let p = policy(&[Value::Null, Value::Null], 8);
        let found = extract(
            &p,
            &headers(&[("authorization", "Bearer t"), ("authorization", "Bearer t")]),
            b"/?access_token=t&access_token=%74",
        )
        .unwrap();
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|f| f.providers == vec![0, 1]));
    }

    #[test]
    fn extraction_stops_at_the_first_token_over_the_limit() {
        let p = policy(&[Value::Null], 2);
        assert_eq!(
            extract(&p, &[], b"/?access_token=a&access_token=b").map(|f| f.len()),
            Ok(2)
        );
        let many: Vec<String> = (0..10_000).map(|i| format!("access_token={i}")).collect();
        let path = format!("/?{}", many.join("&"));
        let mut work = Work::default();
        assert_eq!(
            extract_metered(&p, &[], path.as_bytes(), &mut work),
            Err(TooManyTokens)
        );
        assert!(
            work.bytes < 4 * path.len(),
            "{} for {}",
            work.bytes,
            path.len()
        );
    }

    #[test]
    fn work_is_linear_in_the_request() {
        let p = policy(
            &[
                Value::Null,
                json!({"headers": [{"name": "x-auth", "prefix": "Bearer "}], "queryParams": ["jwt", "auth_token"],
                "cookies": ["session"]}),
            ],
            8,
        );
        let cost = |n: usize| {
            let query: Vec<String> = (0..n).map(|i| format!("p{i}=v&access_token=x")).collect();
            let path = format!("/?{}", query.join("&"));
            let cookie: Vec<String> = (0..n).map(|i| format!("c{i}=v")).collect();
            let h = vec![
                ("x-auth".to_string(), "BearerBearer".repeat(n).into_bytes()),
                ("cookie".to_string(), cookie.join("; ").into_bytes()),
            ];
            let mut work = Work::default();
            let _ = extract_metered(&p, &h, path.as_bytes(), &mut work);
            let size = path.len() + h.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
            (work.bytes, size)
        };
        let (small, small_size) = cost(100);
        let (big, big_size) = cost(10_000);
        assert!(big * small_size <= 2 * small * big_size, "{small} {big}");
    }

    #[test]
    fn cookies_are_read_as_jwt_authn_reads_them() {
        let p = policy(&[json!({"cookies": ["jwt", "other"]})], 8);
        let c = |t: &str| (Location::Cookie("jwt".into()), t.to_owned());
        assert_eq!(
            tokens(&p, &[("cookie", "a=1; jwt=t1;b=2")], "/"),
            vec![c("t1")]
        );
        assert_eq!(
            tokens(
                &p,
                &[("cookie", "jwt=\"t2\""), ("Cookie", "x; jwt=t3")],
                "/"
            ),
            vec![c("t2"), c("t3")]
        );
        assert_eq!(tokens(&p, &[("cookie", "Jwt=t; xjwt=t; jwt")], "/"), vec![]);
        assert_eq!(tokens(&p, &[("cookie", "jwt=")], "/"), vec![c("")]);
        assert_eq!(tokens(&p, &[("x-cookie", "jwt=t")], "/"), vec![]);
    }

    #[test]
    fn removing_a_cookie_keeps_the_others() {
        let h = headers(&[
            ("cookie", "a=1; jwt=t;b=\"2\""),
            ("x", "jwt=y"),
            ("cookie", " jwt=u; odd"),
        ]);
        assert_eq!(
            remove_cookies(&h, &["jwt"]),
            Some(b"a=1; b=\"2\"; odd".to_vec())
        );
        assert_eq!(
            remove_cookies(&headers(&[("cookie", "jwt=t; jwt=u")]), &["jwt"]),
            None
        );
    }

    #[test]
    fn removing_a_param_keeps_the_rest_verbatim() {
        assert_eq!(
            remove_query_params(b"/get?a=%41&auth_token=t&b=2", &["auth_token"]),
            b"/get?a=%41&b=2"
        );
        assert_eq!(
            remove_query_params(b"/get?auth_token=t", &["auth_token"]),
            b"/get"
        );
        assert_eq!(
            remove_query_params(b"/get?auth_token=t&auth%5ftoken=u#f", &["auth_token"]),
            b"/get#f"
        );
        assert_eq!(
            remove_query_params(b"/get?&a&auth_token&b=", &["auth_token"]),
            b"/get?a&b="
        );
        assert_eq!(remove_query_params(b"/get", &["auth_token"]), b"/get");
    }
}
