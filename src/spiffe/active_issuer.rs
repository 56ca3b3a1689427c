//! The issuer csi-driver-spiffe's requests go to, now: the runtime issuance ConfigMap's while it
//! exists and is valid ([`super::runtime_config`]), else the flags'. Shared by the node plugin,
//! which sends its requests there, and the approver, which judges the requests sent there.

use parking_lot::RwLock;

use crate::attributes::IssuerRef;

#[derive(Debug)]
pub struct ActiveIssuer {
    /// `--issuer-name/-kind/-group`, when given.
    static_issuer: Option<IssuerRef>,
    /// The runtime issuance ConfigMap's issuer while it exists and is valid.
    runtime_issuer: RwLock<Option<IssuerRef>>,
    /// Bumped at every change, for those who act on one (the approver looks again at what it
    /// left alone).
    changes: tokio::sync::watch::Sender<u64>,
}

impl ActiveIssuer {
    pub fn new(static_issuer: Option<IssuerRef>) -> ActiveIssuer {
        ActiveIssuer {
            static_issuer,
            runtime_issuer: RwLock::new(None),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The issuer requests go to now: the runtime ConfigMap's, else the flags'.
    pub fn active(&self) -> Option<IssuerRef> {
        self.runtime_issuer
            .read()
            .clone()
            .or_else(|| self.static_issuer.clone())
    }

    /// The runtime ConfigMap's issuer, while there is one.
    pub fn runtime(&self) -> Option<IssuerRef> {
        self.runtime_issuer.read().clone()
    }

    /// Sets (a valid ConfigMap) or clears (deleted) the runtime issuer.
    pub fn set_runtime(&self, issuer: Option<IssuerRef>) {
        let mut runtime = self.runtime_issuer.write();
        if *runtime != issuer {
            *runtime = issuer;
            drop(runtime);
            self.changes.send_modify(|count| *count += 1);
        }
    }

    pub fn static_issuer(&self) -> Option<&IssuerRef> {
        self.static_issuer.as_ref()
    }

    /// Completes at each change of the active issuer.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
