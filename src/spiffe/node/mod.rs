//! csi-driver-spiffe's node plugin (`cert-manager-csi-driver spiffe`): the same volume manager as
//! the main driver, with a different way to build each volume's request ([`request`]) and an
//! issuer wrapper ([`SpiffeIssuer`]) that sends it to the issuer active at the time of issuance
//! (the flags', or the runtime issuance ConfigMap's: [`super::runtime_config`]) and puts the
//! `--source-ca-bundle` in the CA file ([`ca_bundle`]).

pub mod args;
pub mod ca_bundle;
pub mod claims;
pub mod request;

use std::collections::HashMap;
use std::sync::Arc;

use super::ActiveIssuer;

use self::ca_bundle::CaBundle;
use self::request::RequestTemplate;
use crate::attributes::{InvalidAttributes, IssuerRef, VolumeAttributes};
use crate::issuer::{IssueFuture, IssueOrder, Issuer, IssuerError};

/// The node plugin's request state: the template from the flags, the issuer active now, the CA
/// bundle. Shared by the volume manager (building requests) and the issuer wrapper.
#[derive(Debug)]
pub struct SpiffeRequests {
    template: RequestTemplate,
    /// The flags' issuer, or the runtime issuance ConfigMap's.
    issuers: Arc<ActiveIssuer>,
    /// `--runtime-issuance-config-map-namespace/-name`, for messages.
    runtime_config_map: Option<(String, String)>,
    ca_bundle: Option<Arc<CaBundle>>,
    /// How often the CA bundle is looked at.
    ca_poll_interval: std::time::Duration,
}

impl SpiffeRequests {
    pub fn new(
        template: RequestTemplate,
        static_issuer: Option<IssuerRef>,
        runtime_config_map: Option<(String, String)>,
        ca_bundle: Option<Arc<CaBundle>>,
    ) -> SpiffeRequests {
        SpiffeRequests {
            template,
            issuers: Arc::new(ActiveIssuer::new(static_issuer)),
            runtime_config_map,
            ca_bundle,
            ca_poll_interval: ca_bundle::POLL_INTERVAL,
        }
    }

    /// Looks at the CA bundle this often (tests: less than the default).
    pub fn with_ca_poll_interval(mut self, interval: std::time::Duration) -> SpiffeRequests {
        self.ca_poll_interval = interval;
        self
    }

    pub fn ca_poll_interval(&self) -> std::time::Duration {
        self.ca_poll_interval
    }

    /// The runtime issuance ConfigMap (namespace, name), when one is watched.
    pub fn runtime_config_map(&self) -> Option<&(String, String)> {
        self.runtime_config_map.as_ref()
    }

    pub fn template(&self) -> &RequestTemplate {
        &self.template
    }

    /// The issuer requests go to now: the runtime ConfigMap's, else the flags'.
    pub fn active_issuer(&self) -> Option<IssuerRef> {
        self.issuers.active()
    }

    /// What the runtime issuance ConfigMap's watch updates.
    pub fn issuers(&self) -> &Arc<ActiveIssuer> {
        &self.issuers
    }

    pub fn ca_bundle(&self) -> Option<&Arc<CaBundle>> {
        self.ca_bundle.as_ref()
    }

    /// A volume's attributes (see [`RequestTemplate::build`]). With no issuer active the spec
    /// names an empty one, which [`SpiffeIssuer`] never sends.
    pub fn build(
        &self,
        context: &HashMap<String, String>,
    ) -> Result<VolumeAttributes, InvalidAttributes> {
        let issuer = self.active_issuer().unwrap_or(IssuerRef {
            name: String::new(),
            kind: String::new(),
            group: String::new(),
        });
        self.template.build(context, issuer)
    }

    /// Why nothing can be issued now, if so.
    pub fn no_issuer_error(&self) -> IssuerError {
        let how = match &self.runtime_config_map {
            Some((namespace, name)) => format!(
                "the runtime issuance ConfigMap {namespace}/{name} does not exist or is not \
                 valid (keys issuer-name, issuer-kind, issuer-group), and no --issuer-name/\
                 --issuer-kind/--issuer-group were given"
            ),
            None => "no --issuer-name/--issuer-kind/--issuer-group were given".to_string(),
        };
        IssuerError::unavailable(format!(
            "no issuerRef is currently active for csi-driver-spiffe: {how}"
        ))
    }
}

/// The issuer the SPIFFE node plugin issues through: the cert-manager backend, sent to the issuer
/// active at the time of each issuance, with the `--source-ca-bundle` as the CA.
pub struct SpiffeIssuer {
    inner: Arc<dyn Issuer>,
    requests: Arc<SpiffeRequests>,
}

impl SpiffeIssuer {
    pub fn new(inner: Arc<dyn Issuer>, requests: Arc<SpiffeRequests>) -> SpiffeIssuer {
        SpiffeIssuer { inner, requests }
    }
}

impl Issuer for SpiffeIssuer {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    fn signs_on_this_node(&self) -> bool {
        self.inner.signs_on_this_node()
    }

    fn needs_pod_token(&self) -> bool {
        self.inner.needs_pod_token()
    }

    fn readiness(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            if self.requests.active_issuer().is_none() {
                return Err(self.requests.no_issuer_error().to_string());
            }
            self.inner.readiness().await
        })
    }

    fn managed_requests(&self) -> usize {
        self.inner.managed_requests()
    }

    fn issue<'a>(&'a self, order: &'a IssueOrder) -> IssueFuture<'a> {
        Box::pin(async move {
            let Some(issuer) = self.requests.active_issuer() else {
                return Err(self.requests.no_issuer_error());
            };
            let mut order = order.clone();
            order.issuer = issuer;
            let mut issued = self.inner.issue(&order).await?;
            if let Some(bundle) = &self.requests.ca_bundle {
                issued.ca_pem = bundle.pem();
            }
            Ok(issued)
        })
    }

    fn volume_gone(&self, volume_id: &str, namespace: &str, interrupted: bool) {
        self.inner.volume_gone(volume_id, namespace, interrupted)
    }
}
