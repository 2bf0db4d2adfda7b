//! Every reason a request can be refused, each with the exact string native `jwt_authn`
//! (google/jwt_verify_lib) answers, and the one place that maps a reason to an HTTP code.

/// Why a token (or a request) was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    JwtMissing,
    JwtBadFormat,
    JwtHeaderBadBase64,
    JwtHeaderBadJson,
    JwtHeaderBadAlg,
    JwtHeaderNotImplementedAlg,
    JwtHeaderBadKid,
    JwtPayloadBadBase64,
    JwtPayloadBadJson,
    JwtPayloadIssNotString,
    JwtPayloadSubNotString,
    JwtPayloadIatNotInteger,
    JwtPayloadIatOutOfRange,
    JwtPayloadNbfNotInteger,
    JwtPayloadNbfOutOfRange,
    JwtPayloadExpNotInteger,
    JwtPayloadExpOutOfRange,
    JwtPayloadJtiNotString,
    JwtPayloadAudNotString,
    JwtSignatureBadBase64,
    JwtMultipleTokens,
    JwtUnknownIssuer,
    JwtExpired,
    JwtNotYetValid,
    JwtAudienceNotAllowed,
    JwtVerificationFail,
    JwksKidAlgMismatch,
    JwksNoValidKeys,
    JwksFetchFail,
    ClaimsNotAllowed,
    ScopesNotAllowed,
}

/// The family a status belongs to, for stats counters (`denied.<family>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Missing,
    Malformed,
    Issuer,
    Time,
    Audience,
    Signature,
    Jwks,
    Claims,
}

impl Status {
    /// The response body, exactly as `jwt_authn` writes it.
    pub fn as_str(self) -> &'static str {
        use Status::*;
        match self {
            JwtMissing => "Jwt is missing",
            JwtBadFormat => {
                "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
            }
            JwtHeaderBadBase64 => "Jwt header is an invalid Base64url encoded",
            JwtHeaderBadJson => "Jwt header is an invalid JSON",
            JwtHeaderBadAlg => "Jwt header [alg] field is required and must be a string",
            JwtHeaderNotImplementedAlg => "Jwt header [alg] is not supported",
            JwtHeaderBadKid => "Jwt header [kid] field is not a string",
            JwtPayloadBadBase64 => "Jwt payload is an invalid Base64url encoded",
            JwtPayloadBadJson => "Jwt payload is an invalid JSON",
            JwtPayloadIssNotString => "Jwt payload [iss] field is not a string",
            JwtPayloadSubNotString => "Jwt payload [sub] field is not a string",
            JwtPayloadIatNotInteger => "Jwt payload [iat] field is not an integer",
            JwtPayloadIatOutOfRange => "Jwt payload [iat] field is not a positive 64 bit integer",
            JwtPayloadNbfNotInteger => "Jwt payload [nbf] field is not an integer",
            JwtPayloadNbfOutOfRange => "Jwt payload [nbf] field is not a positive 64 bit integer",
            JwtPayloadExpNotInteger => "Jwt payload [exp] field is not an integer",
            JwtPayloadExpOutOfRange => "Jwt payload [exp] field is not a positive 64 bit integer",
            JwtPayloadJtiNotString => "Jwt payload [jti] field is not a string",
            JwtPayloadAudNotString => "Jwt payload [aud] field is not a string or string list",
            JwtSignatureBadBase64 => "Jwt signature is an invalid Base64url encoded",
            JwtMultipleTokens => "Found multiple Jwt tokens",
            JwtUnknownIssuer => "Jwt issuer is not configured",
            JwtExpired => "Jwt is expired",
            JwtNotYetValid => "Jwt not yet valid",
            JwtAudienceNotAllowed => "Audiences in Jwt are not allowed",
            JwtVerificationFail => "Jwt verification fails",
            JwksKidAlgMismatch => "Jwks doesn't have key to match kid or alg from Jwt",
            JwksNoValidKeys => "Jwks doesn't have any valid public key",
            JwksFetchFail => "Jwks remote fetch is failed",
            ClaimsNotAllowed => "Jwt claims are not allowed",
            ScopesNotAllowed => "Jwt scopes are not allowed",
        }
    }

    /// The HTTP status of the local reply: 403 when the token is authentic but not allowed.
    pub fn http_code(self) -> u32 {
        match self {
            Status::JwtAudienceNotAllowed | Status::ClaimsNotAllowed | Status::ScopesNotAllowed => {
                403
            }
            _ => 401,
        }
    }

    pub fn family(self) -> Family {
        use Status::*;
        match self {
            JwtMissing => Family::Missing,
            JwtUnknownIssuer => Family::Issuer,
            JwtExpired | JwtNotYetValid => Family::Time,
            JwtAudienceNotAllowed => Family::Audience,
            JwtVerificationFail => Family::Signature,
            JwksKidAlgMismatch | JwksNoValidKeys | JwksFetchFail => Family::Jwks,
            ClaimsNotAllowed | ScopesNotAllowed => Family::Claims,
            _ => Family::Malformed,
        }
    }
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Missing => "missing",
            Family::Malformed => "malformed",
            Family::Issuer => "issuer",
            Family::Time => "time",
            Family::Audience => "audience",
            Family::Signature => "signature",
            Family::Jwks => "jwks",
            Family::Claims => "claims",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_and_claims_are_forbidden_everything_else_unauthorized() {
        assert_eq!(Status::JwtAudienceNotAllowed.http_code(), 403);
        assert_eq!(Status::ClaimsNotAllowed.http_code(), 403);
        assert_eq!(Status::JwtMissing.http_code(), 401);
        assert_eq!(Status::JwtVerificationFail.http_code(), 401);
        assert_eq!(Status::JwksFetchFail.http_code(), 401);
    }
}
