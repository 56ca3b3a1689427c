//! The CSIDriver object is upstream's, field for field, so that `helm upgrade` from upstream's
//! release and `helm rollback` to it never change a field the API server refuses to change.

use super::*;

/// Upstream's CSIDriver spec, from jetstack csi-driver 4b98b47,
/// `deploy/charts/csi-driver/templates/csidriver.yaml`: it sets only these fields and leaves the
/// rest (attachRequired: true, fsGroupPolicy: ReadWriteOnceWithFSType) to the API server's
/// defaults. With `app.driver.useTokenRequest` it adds the token request and republishing.
fn upstream_spec(use_token_request: bool) -> Value {
    let mut spec = json!({
        "podInfoOnMount": true,
        "volumeLifecycleModes": ["Ephemeral"],
    });
    if use_token_request {
        spec["tokenRequests"] = json!([{ "audience": "", "expirationSeconds": 3600 }]);
        spec["requiresRepublish"] = json!(true);
    }
    spec
}

/// Fields the API server refuses to change on an existing CSIDriver: the first two always, the
/// others before Kubernetes 1.30 (kubernetes PR #116209, released in 1.30). A field absent from both specs is the API server's default on
/// both sides, which is the same value.
const IMMUTABLE_FIELDS: [&str; 4] = [
    "attachRequired",
    "volumeLifecycleModes",
    "podInfoOnMount",
    "fsGroupPolicy",
];

#[test]
fn csidriver_spec_is_upstreams_exactly() {
    for use_token_request in [false, true] {
        let rendered = render(&[
            "--set",
            &format!("app.driver.useTokenRequest={use_token_request}"),
        ]);
        let ours = &rendered.one("CSIDriver")["spec"];
        let upstream = upstream_spec(use_token_request);
        for field in IMMUTABLE_FIELDS {
            assert_eq!(
                ours.get(field),
                upstream.get(field),
                "CSIDriver spec.{field} (useTokenRequest={use_token_request}) differs from \
                 upstream's chart ({} here, {} upstream; absent = the API server's default). \
                 The field is immutable: `helm upgrade` from upstream's release, or `helm \
                 rollback` to it, would fail with \"field is immutable\"",
                ours.get(field)
                    .map_or("absent".to_owned(), Value::to_string),
                upstream
                    .get(field)
                    .map_or("absent".to_owned(), Value::to_string),
            );
        }
        assert_eq!(
            ours, &upstream,
            "CSIDriver spec (useTokenRequest={use_token_request}) is not upstream's"
        );
    }
}

#[test]
fn token_requests_pass_the_flag_with_the_csidriver_fields() {
    let args =
        render(&["--set", "app.driver.useTokenRequest=true"]).args("cert-manager-csi-driver");
    assert!(args.contains(&"--use-token-request".to_owned()), "{args:?}");
    let args = render(&[]).args("cert-manager-csi-driver");
    assert!(
        !args.contains(&"--use-token-request".to_owned()),
        "{args:?}"
    );
}
