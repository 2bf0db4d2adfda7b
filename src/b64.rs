//! Base64url decoding as `jwt_authn` accepts it: url-safe alphabet, padding optional.

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

/// Decodes base64url with or without `=` padding.
pub fn decode_url(input: &str) -> Option<Vec<u8>> {
    URL_LENIENT.decode(input).ok()
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
}
