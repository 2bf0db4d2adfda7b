//! Base64url decoding as `jwt_authn` accepts it (abseil's `WebSafeBase64Unescape`): url-safe
//! alphabet, padding optional, ASCII whitespace anywhere ignored.

use std::borrow::Cow;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Whitespace as abseil's `ascii_isspace`: space, `\t`, `\n`, `\v`, `\f`, `\r`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Decodes base64url with or without `=` padding (none, or exactly what is due); whitespace
/// is skipped (a token taken from a header such as `Bearer <token> trailing` keeps its spaces,
/// and `jwt_authn` decodes it).
pub fn decode_url(input: &str) -> Option<Vec<u8>> {
    let bytes: Cow<'_, [u8]> = if input.bytes().any(is_space) {
        Cow::Owned(input.bytes().filter(|&b| !is_space(b)).collect())
    } else {
        Cow::Borrowed(input.as_bytes())
    };
    let data_len = bytes.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    let (data, padding) = bytes.split_at(data_len);
    let due = match data.len() % 4 {
        0 => 0,
        2 => 2,
        3 => 1,
        _ => return None,
    };
    if !padding.is_empty() && padding.len() != due {
        return None;
    }
    URL_LENIENT.decode(data).ok()
}

/// The one spelling [`encode_url`] gives of what `input` decodes to (`None`: not base64url).
pub fn canonical_url(input: &str) -> Option<String> {
    decode_url(input).map(|bytes| encode_url(&bytes))
}

/// `input` is the one spelling [`encode_url`] gives its bytes: url-safe alphabet only, no padding
/// or whitespace, and the unused low bits of the last character zero. [`decode_url`] accepts other
/// spellings of the same bytes (as `jwt_authn` does); this tells them apart.
pub fn is_canonical_url(input: &str) -> bool {
    fn value(b: u8) -> Option<u8> {
        match b {
            b'A'..=b'Z' => Some(b - b'A'),
            b'a'..=b'z' => Some(b - b'a' + 26),
            b'0'..=b'9' => Some(b - b'0' + 52),
            b'-' => Some(62),
            b'_' => Some(63),
            _ => None,
        }
    }
    if !input.bytes().all(|b| value(b).is_some()) {
        return false;
    }
    let spare_mask = match input.len() % 4 {
        0 => 0,
        2 => 0x0f,
        3 => 0x03,
        _ => return false,
    };
    input
        .bytes()
        .last()
        .and_then(value)
        .is_none_or(|v| v & spare_mask == 0)
}

/// Encodes base64url without padding.
pub fn encode_url(input: &[u8]) -> String {
    URL_LENIENT.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_optional() {
        assert_eq!(decode_url("YQ").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_url("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_url("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert!(decode_url("a+b/").is_none());
        assert!(decode_url("Y").is_none());
    }

    #[test]
    fn whitespace_is_skipped_as_abseil_does() {
        assert_eq!(decode_url(" Y Q\t=\r\n= ").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_url("YWJj\x0bZA").as_deref(), Some(&b"abcd"[..]));
        assert!(decode_url("Y Q=").is_none(), "one = where two are due");
        assert!(decode_url("Y,Q").is_none());
        assert!(decode_url("YWJj=").is_none() && decode_url("====").is_none());
        assert!(decode_url("Y=Q").is_none());
    }

    #[test]
    fn canonical_is_the_one_spelling_encode_gives() {
        for bytes in [&b""[..], b"a", b"ab", b"abc", &[0xfb, 0xff, 0x00, 0x10]] {
            assert!(is_canonical_url(&encode_url(bytes)), "{bytes:?}");
        }
        assert!(!is_canonical_url("YQ=="), "padding");
        assert!(!is_canonical_url("Y Q"), "whitespace");
        assert!(
            !is_canonical_url("YR"),
            "spare bits set (decodes as 'a' too)"
        );
        assert_eq!(decode_url("YR").as_deref(), Some(&b"a"[..]));
        assert!(
            is_canonical_url("YWI") && !is_canonical_url("YWJ"),
            "ab, and ab with a spare bit set"
        );
        assert!(!is_canonical_url("Y"), "a lone character");
        assert!(!is_canonical_url("a+b/"), "standard alphabet");
    }
}
