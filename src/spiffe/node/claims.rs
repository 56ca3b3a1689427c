//! The claims of the pod's service-account token that name its identity, read without verifying
//! the signature: the token is only ever presented to the API server, which verifies it when the
//! CertificateRequest is created with it (as upstream reads it). What the driver checks here is
//! that the token and kubelet's pod info agree on who the pod is.

/// The identity a projected service-account token names (`kubernetes.io.namespace`,
/// `kubernetes.io.serviceaccount.name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    pub namespace: String,
    pub service_account: String,
}

/// Why the claims could not be read. Messages never include the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error("is not a JWT (header.payload.signature)")]
    NotAJwt,
    #[error("has a payload that is not base64url-encoded JSON")]
    BadPayload,
    #[error("names no {0} claim")]
    Missing(&'static str),
}

#[derive(serde::Deserialize)]
struct Payload {
    #[serde(rename = "kubernetes.io")]
    kubernetes: Option<KubernetesClaims>,
}

#[derive(serde::Deserialize)]
struct KubernetesClaims {
    namespace: Option<String>,
    serviceaccount: Option<ServiceAccountClaim>,
}

#[derive(serde::Deserialize)]
struct ServiceAccountClaim {
    name: Option<String>,
}

/// Reads the namespace and service account a token names.
pub fn identity(token: &str) -> Result<TokenIdentity, ClaimsError> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ClaimsError::NotAJwt);
    };
    let json = base64url_decode(payload).ok_or(ClaimsError::BadPayload)?;
    let payload: Payload = serde_json::from_slice(&json).map_err(|_| ClaimsError::BadPayload)?;
    let kubernetes = payload.kubernetes;
    let namespace = kubernetes
        .as_ref()
        .and_then(|claims| claims.namespace.clone())
        .filter(|value| !value.is_empty())
        .ok_or(ClaimsError::Missing("kubernetes.io.namespace"))?;
    let service_account = kubernetes
        .and_then(|claims| claims.serviceaccount)
        .and_then(|account| account.name)
        .filter(|value| !value.is_empty())
        .ok_or(ClaimsError::Missing("kubernetes.io.serviceaccount.name"))?;
    Ok(TokenIdentity {
        namespace,
        service_account,
    })
}

/// Base64url without padding (RFC 7515 §2); trailing `=` padding is tolerated.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    // A single leftover sextet cannot encode a byte.
    (bits < 6).then_some(out)
}

/// Base64url without padding, for building test tokens.
pub fn base64url_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, byte)| n | u32::from(*byte) << (16 - 8 * i));
        let sextets = chunk.len() + 1;
        for i in 0..sextets {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An unsigned token with kubelet-style claims for `namespace`/`service_account` (tests).
pub fn unsigned_token(namespace: &str, service_account: &str) -> String {
    let header = base64url_encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = serde_json::json!({
        "aud": [""],
        "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": { "name": service_account, "uid": "0" },
            "pod": { "name": "p", "uid": "0" },
        },
    });
    let payload = base64url_encode(payload.to_string().as_bytes());
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_nested_claims() {
        let token = unsigned_token("sandbox", "sleep");
        assert_eq!(
            identity(&token).unwrap(),
            TokenIdentity {
                namespace: "sandbox".into(),
                service_account: "sleep".into()
            }
        );
    }

    #[test]
    fn round_trips_every_length() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64url_decode(&base64url_encode(&bytes)).unwrap(), bytes);
        }
        assert_eq!(base64url_decode("a"), None);
        assert_eq!(base64url_decode("a+b/"), None);
    }

    #[test]
    fn refuses_what_is_not_a_token_without_panicking() {
        assert_eq!(identity("secret"), Err(ClaimsError::NotAJwt));
        assert_eq!(identity("a.b.c.d"), Err(ClaimsError::NotAJwt));
        assert_eq!(identity("a.!!.c"), Err(ClaimsError::BadPayload));
        let no_sa = format!(
            "x.{}.y",
            base64url_encode(br#"{"kubernetes.io":{"namespace":"a"}}"#)
        );
        assert_eq!(
            identity(&no_sa),
            Err(ClaimsError::Missing("kubernetes.io.serviceaccount.name"))
        );
        let flat = format!(
            "x.{}.y",
            base64url_encode(br#"{"kubernetes.io.namespace":"a"}"#)
        );
        assert_eq!(
            identity(&flat),
            Err(ClaimsError::Missing("kubernetes.io.namespace"))
        );
        let wrong_type = format!(
            "x.{}.y",
            base64url_encode(br#"{"kubernetes.io":{"namespace":5}}"#)
        );
        assert_eq!(identity(&wrong_type), Err(ClaimsError::BadPayload));
    }
}
