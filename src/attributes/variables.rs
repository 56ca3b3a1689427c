//! Variable expansion (`${POD_NAME}`, `$POD_NAME`) with the pod's own values, with the syntax of
//! Go's `os.Expand`, which the Go driver uses: `$` and one of `*#$@!?-` or a digit is a
//! one-character variable (so `$$` and `$1` are unknown variables), `${}` and an unclosed `${`
//! are dropped, and a `$` followed by anything else, or last, stays as it is. Like the Go driver,
//! an unknown variable is an error; unlike it, the error lists the known ones.

use super::PodInfo;

/// The variables a volume attribute may use.
pub const KNOWN_VARIABLES: [&str; 4] = [
    "POD_NAME",
    "POD_NAMESPACE",
    "POD_UID",
    "SERVICE_ACCOUNT_NAME",
];

fn lookup<'a>(name: &str, pod: &'a PodInfo) -> Result<&'a str, String> {
    match name {
        "POD_NAME" => Ok(pod.name.as_str()),
        "POD_NAMESPACE" => Ok(pod.namespace.as_str()),
        "POD_UID" => Ok(pod.uid.as_str()),
        // A service account kubelet did not send is empty, as in the Go driver.
        "SERVICE_ACCOUNT_NAME" => Ok(pod.service_account.as_deref().unwrap_or_default()),
        // The pod's addresses are IP SANs, which is what a client checks an address against;
        // they are resolved at issuance (see `sans.rs`), never spelled into a name.
        "POD_IP" | "POD_IPS" => Err(format!(
            "uses ${{{name}}}, which only csi.cert-manager.io/ip-sans can use, as a whole entry"
        )),
        _ => Err(format!(
            "uses unknown variable ${{{name}}}; known variables are {}",
            KNOWN_VARIABLES.map(|v| format!("${{{v}}}")).join(", ")
        )),
    }
}

/// A name character of `$NAME` (os.Expand's `isAlphaNum`).
fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// A one-character variable of the shell (os.Expand's `isShellSpecialVar`).
fn is_special(c: u8) -> bool {
    matches!(c, b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-') || c.is_ascii_digit()
}

/// After a `$`: the variable's name (`None` when the text is dropped or kept) and how many bytes
/// of `after` it takes, as os.Expand's `getShellName`.
fn variable_name(after: &str) -> (Option<&str>, usize) {
    let bytes = after.as_bytes();
    if bytes[0] == b'{' {
        if bytes.len() > 2 && is_special(bytes[1]) && bytes[2] == b'}' {
            return (Some(&after[1..2]), 3);
        }
        return match after[1..].find('}') {
            // `${}`: dropped.
            Some(0) => (None, 2),
            Some(end) => (Some(&after[1..=end]), end + 2),
            // An unclosed `${`: the `${` is dropped, the rest kept.
            None => (None, 1),
        };
    }
    if is_special(bytes[0]) {
        return (Some(&after[..1]), 1);
    }
    let len = bytes.iter().take_while(|c| is_name_char(**c)).count();
    (Some(&after[..len]), len)
}

/// Expands every variable in `input`.
pub fn expand(input: &str, pod: &PodInfo) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if after.is_empty() {
            out.push('$');
            rest = after;
            break;
        }
        let (name, taken) = variable_name(after);
        match name {
            // Not a variable: the `$` stays, and what follows is read on.
            Some("") => out.push('$'),
            Some(name) => out.push_str(lookup(name, pod)?),
            None => {}
        }
        rest = &after[taken..];
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
    fn go_os_expand_syntax() {
        let pod = pod();
        for (input, expanded) in [
            ("${}", ""),
            ("a${}b", "ab"),
            ("${POD_NAME", "POD_NAME"),
            ("x${", "x"),
            ("a$", "a$"),
            ("$", "$"),
            ("a$.b", "a$.b"),
            ("$ {POD_NAME}", "$ {POD_NAME}"),
            ("$POD_NAME.x", "web-0.x"),
        ] {
            assert_eq!(expand(input, &pod).as_deref(), Ok(expanded), "{input}");
        }
        for input in [
            "$$",
            "$*",
            "$#",
            "$@",
            "$!",
            "$?",
            "$-",
            "$1",
            "$0abc",
            "${$}",
            "${POD-NAME}",
            "${ POD_NAME}",
        ] {
            let error = expand(input, &pod).unwrap_err();
            assert!(error.contains("POD_NAMESPACE"), "{input}: {error}");
        }
    }

    #[test]
    fn missing_service_account_is_empty() {
        let mut pod = pod();
        pod.service_account = None;
        assert_eq!(
            expand("sa-${SERVICE_ACCOUNT_NAME}", &pod).as_deref(),
            Ok("sa-")
        );
    }
}
