//! The pod's service-account token that kubelet passes in the volume context when the CSIDriver
//! asks for token requests (`csi.storage.k8s.io/serviceAccount.tokens`), used with
//! `--use-token-request` to create CertificateRequests as the pod rather than as the driver.

use std::collections::HashMap;

use secrecy::{ExposeSecret, SecretString};

use crate::attributes::key;

/// The audience the chart's CSIDriver asks kubelet for (the API server's own).
pub const AUDIENCE: &str = "";

/// A bearer token. Its `Debug` never shows the value, and it is never written to disk.
#[derive(Clone)]
pub struct ServiceAccountToken(SecretString);

impl std::fmt::Debug for ServiceAccountToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceAccountToken(<redacted>)")
    }
}

impl PartialEq for ServiceAccountToken {
    fn eq(&self, other: &Self) -> bool {
        self.0.expose_secret() == other.0.expose_secret()
    }
}

impl ServiceAccountToken {
    pub fn new(token: String) -> ServiceAccountToken {
        ServiceAccountToken(SecretString::from(token))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// Why the token entry could not be used. Messages never include the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "--use-token-request is set but kubelet passed no service-account token \
         ({key} is missing): the CSIDriver object needs `tokenRequests: [{{audience: \"\"}}]`",
        key = key::SERVICE_ACCOUNT_TOKENS
    )]
    Missing,
    #[error("{key} is not valid JSON of audience → token", key = key::SERVICE_ACCOUNT_TOKENS)]
    Malformed,
    #[error(
        "{key} holds no token for the audience \"\" (the API server's); the CSIDriver's \
         tokenRequests must include `{{audience: \"\"}}`",
        key = key::SERVICE_ACCOUNT_TOKENS
    )]
    NoTokenForAudience,
}

#[derive(serde::Deserialize)]
struct TokenEntry {
    token: String,
}

/// Reads the token for [`AUDIENCE`] from a volume context.
pub fn from_volume_context(
    context: &HashMap<String, String>,
) -> Result<ServiceAccountToken, TokenError> {
    let raw = context
        .get(key::SERVICE_ACCOUNT_TOKENS)
        .ok_or(TokenError::Missing)?;
    let entries: HashMap<String, TokenEntry> =
        serde_json::from_str(raw).map_err(|_| TokenError::Malformed)?;
    let entry = entries
        .into_iter()
        .find(|(audience, _)| audience == AUDIENCE)
        .ok_or(TokenError::NoTokenForAudience)?;
    if entry.1.token.is_empty() {
        return Err(TokenError::NoTokenForAudience);
    }
    Ok(ServiceAccountToken::new(entry.1.token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(value: &str) -> HashMap<String, String> {
        HashMap::from([(key::SERVICE_ACCOUNT_TOKENS.to_string(), value.to_string())])
    }

    #[test]
    fn reads_the_api_server_audience() {
        let token = from_volume_context(&context(
            r#"{"":{"token":"abc.def","expirationTimestamp":"2026-11-23T14:00:00Z"},"vault":{"token":"other"}}"#,
        ))
        .unwrap();
        assert_eq!(token.secret().expose_secret(), "abc.def");
    }

    #[test]
    fn errors_say_what_is_wrong_without_the_token() {
        assert_eq!(
            from_volume_context(&HashMap::new()),
            Err(TokenError::Missing)
        );
        assert_eq!(
            from_volume_context(&context("not json secret-value")),
            Err(TokenError::Malformed)
        );
        assert!(!TokenError::Malformed.to_string().contains("secret-value"));
        assert_eq!(
            from_volume_context(&context(r#"{"vault":{"token":"x"}}"#)),
            Err(TokenError::NoTokenForAudience)
        );
    }

    #[test]
    fn debug_hides_the_value() {
        let token = ServiceAccountToken::new("very-secret".into());
        assert!(!format!("{token:?}").contains("very-secret"));
    }
}
