//! The JDK's keytool as the outside check of the Java stores the driver writes.

use std::path::Path;
use std::process::Command;

/// `keytool -list` of a store: its stdout, after asserting keytool accepted the store.
pub fn keytool_list(store: &Path, store_type: &str, password: &str) -> String {
    let output = Command::new("keytool")
        .args([
            "-list",
            "-storetype",
            store_type,
            "-storepass",
            password,
            "-keystore",
        ])
        .arg(store)
        .output()
        .expect("keytool runs (the JDK is installed)");
    assert!(
        output.status.success(),
        "keytool -list {}: {}",
        store.display(),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The aliases of a JKS's entries, in keytool's order.
pub fn jks_aliases(store: &Path, password: &str) -> Vec<String> {
    keytool_list(store, "JKS", password)
        .lines()
        .filter(|line| line.contains("Entry,"))
        .map(|line| line.split(',').next().unwrap_or_default().to_string())
        .collect()
}
