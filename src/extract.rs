//! Where tokens are: the configured headers (with their prefix) and query parameters of every
//! provider of the governing policy, and how to take a token out of the request again.

use crate::policy::Policy;

/// A request header as the host hands it over: the name (lower-case in Envoy) and raw bytes.
pub type Header = (String, Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Lower-case header name.
    Header(String),
    Query(String),
}

/// One token found, and the providers whose locations held it (indices into `policy.providers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub location: Location,
    pub token: String,
    pub providers: Vec<usize>,
}

fn push(found: &mut Vec<Found>, location: Location, token: String, provider: usize) {
    match found
        .iter_mut()
        .find(|f| f.location == location && f.token == token)
    {
        Some(f) if !f.providers.contains(&provider) => f.providers.push(provider),
        Some(_) => {}
        None => found.push(Found {
            location,
            token,
            providers: vec![provider],
        }),
    }
}

/// More distinct tokens than `limits.max_tokens_per_request` (`Found multiple Jwt tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyTokens;

/// Every token in every location of every provider; the same token in the same location is
/// found once, with every provider that looks there. Fails once more than the policy's token
/// limit are found.
pub fn extract(
    policy: &Policy,
    headers: &[Header],
    path: &[u8],
) -> Result<Vec<Found>, TooManyTokens> {
    let found = extract_all(policy, headers, path);
    if found.len() > policy.limits.max_tokens_per_request {
        return Err(TooManyTokens);
    }
    Ok(found)
}

fn extract_all(policy: &Policy, headers: &[Header], path: &[u8]) -> Vec<Found> {
    let mut found = Vec::new();
    let query = query_pairs(path);
    for (i, provider) in policy.providers.iter().enumerate() {
        for source in &provider.headers {
            for (name, value) in headers {
                if !name.eq_ignore_ascii_case(&source.name) {
                    continue;
                }
                let Some(rest) = value.strip_prefix(source.prefix.as_bytes()) else {
                    continue;
                };
                let token = text(rest.trim_ascii());
                if !token.is_empty() {
                    push(&mut found, Location::Header(source.name.clone()), token, i);
                }
            }
        }
        for param in &provider.query_params {
            for (name, value) in &query {
                if name == param && !value.is_empty() {
                    push(&mut found, Location::Query(param.clone()), value.clone(), i);
                }
            }
        }
    }
    found
}

/// The query of a `:path`, split and percent-decoded (`+` stays `+`).
pub fn query_pairs(path: &[u8]) -> Vec<(String, String)> {
    let Some(start) = path.iter().position(|&b| b == b'?') else {
        return Vec::new();
    };
    let query = path.get(start + 1..).unwrap_or_default();
    let query = query.split(|&b| b == b'#').next().unwrap_or_default();
    query
        .split(|&b| b == b'&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let mut it = kv.splitn(2, |&b| b == b'=');
            let k = it.next().unwrap_or_default();
            let v = it.next().unwrap_or_default();
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(input: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if b == b'%'
            && let (Some(h), Some(l)) = (
                input.get(i + 1).and_then(|&c| hex(c)),
                input.get(i + 2).and_then(|&c| hex(c)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    text(&out)
}

/// Bytes as text: the common valid case without a copy through the lossy decoder.
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
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
    let kept: Vec<&[u8]> = query
        .split(|&b| b == b'&')
        .filter(|kv| {
            let key = kv.split(|&b| b == b'=').next().unwrap_or_default();
            !kv.is_empty() && !names.contains(&percent_decode(key).as_str())
        })
        .collect();
    let mut out = base.to_vec();
    if !kept.is_empty() {
        out.push(b'?');
        out.extend(kept.join(&b'&'));
    }
    out.extend(fragment);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_split_and_decoded() {
        let q = query_pairs(b"/get?a=1&access_token=x%2Ey&&b#frag");
        assert_eq!(
            q,
            vec![
                ("a".into(), "1".into()),
                ("access_token".into(), "x.y".into()),
                ("b".into(), "".into())
            ]
        );
        assert!(query_pairs(b"/plain").is_empty());
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
            remove_query_params(b"/get?auth_token=t&auth_token=u#f", &["auth_token"]),
            b"/get#f"
        );
        assert_eq!(remove_query_params(b"/get", &["auth_token"]), b"/get");
    }
}
