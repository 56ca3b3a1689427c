//! Shell-like variable expansion (`${POD_NAME}`, `$POD_NAME`) with the pod's own values, like Go's
//! `os.Expand` that upstream uses. Unlike upstream, an unknown variable is an error instead of
//! silently becoming an empty string.

use super::PodInfo;

/// The variables a volume attribute may use.
pub const KNOWN_VARIABLES: [&str; 4] = [
    "POD_NAME",
    "POD_NAMESPACE",
    "POD_UID",
    "SERVICE_ACCOUNT_NAME",
];

fn lookup<'a>(name: &str, pod: &'a PodInfo) -> Result<&'a str, String> {
    let value = match name {
        "POD_NAME" => Some(pod.name.as_str()),
        "POD_NAMESPACE" => Some(pod.namespace.as_str()),
        "POD_UID" => Some(pod.uid.as_str()),
        "SERVICE_ACCOUNT_NAME" => pod.service_account.as_deref(),
        // The pod's addresses are IP SANs, which is what a client checks an address against;
        // they are resolved at issuance (see `sans.rs`), never spelled into a name.
        "POD_IP" | "POD_IPS" => {
            return Err(format!(
                "uses ${{{name}}}, which only csi.cert-manager.io/ip-sans can use, as a whole entry"
            ));
        }
        _ => {
            return Err(format!(
                "uses unknown variable ${{{name}}}; known variables are {}",
                KNOWN_VARIABLES.map(|v| format!("${{{v}}}")).join(", ")
            ));
        }
    };
    value.ok_or_else(|| {
        format!("uses ${{{name}}} but kubelet did not pass it (is podInfoOnMount enabled on the CSIDriver?)")
    })
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands every variable in `input`. A `$` not followed by a name stays as it is.
pub fn expand(input: &str, pod: &PodInfo) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("has an unclosed ${{ in {input:?}"))?;
            let name = &braced[..end];
            if name.is_empty() || !name.chars().all(is_name_char) {
                return Err(format!("has an invalid variable ${{{name}}}"));
            }
            out.push_str(lookup(name, pod)?);
            rest = &braced[end + 1..];
        } else {
            let name_len = after.find(|c| !is_name_char(c)).unwrap_or(after.len());
            if name_len == 0 {
                out.push('$');
            } else {
                out.push_str(lookup(&after[..name_len], pod)?);
            }
            rest = &after[name_len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodInfo {
        PodInfo {
            name: "web-0".into(),
            namespace: "prod".into(),
            uid: "1234".into(),
            service_account: Some("web".into()),
        }
    }

    #[test]
    fn expands_braced_and_bare_variables() {
        assert_eq!(
            expand("${POD_NAME}.${POD_NAMESPACE}.svc", &pod()).unwrap(),
            "web-0.prod.svc"
        );
        assert_eq!(expand("$POD_NAME-$POD_UID", &pod()).unwrap(), "web-0-1234");
        assert_eq!(expand("${SERVICE_ACCOUNT_NAME}", &pod()).unwrap(), "web");
        assert_eq!(expand("no variables", &pod()).unwrap(), "no variables");
        assert_eq!(expand("cost: 5$", &pod()).unwrap(), "cost: 5$");
    }

    #[test]
    fn unknown_variable_lists_known_ones() {
        let error = expand("${POD_HOSTNAME}", &pod()).unwrap_err();
        assert!(error.contains("${POD_HOSTNAME}"), "{error}");
        for known in KNOWN_VARIABLES {
            assert!(error.contains(known), "{error}");
        }
    }

    #[test]
    fn malformed_braces_are_errors() {
        assert!(expand("${POD_NAME", &pod()).is_err());
        assert!(expand("${}", &pod()).is_err());
        assert!(expand("${POD-NAME}", &pod()).is_err());
    }

    #[test]
    fn missing_service_account_is_reported() {
        let mut pod = pod();
        pod.service_account = None;
        assert!(
            expand("$SERVICE_ACCOUNT_NAME", &pod)
                .unwrap_err()
                .contains("podInfoOnMount")
        );
    }
}
