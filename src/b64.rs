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
}
