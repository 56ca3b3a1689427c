//! The Go driver's accept/refuse rules for volume attributes, one vector per fact, each named
//! after the Go code it comes from (cert-manager/csi-driver `pkg/apis/defaults`,
//! `pkg/apis/validation`, `pkg/requestgen`, `pkg/filestore`; Go's `os.Expand`, `strconv.Atoi`,
//! `url.ParseRequestURI`). A vector is a change to a correct pod's volume context, and what the
//! Go driver does with it: accept (and, where it matters, what goes on the request), or refuse
//! (the key named, and a fragment of the message).
//!
//! Where this driver deliberately does not do what Go does, the vector says so in its rule name
//! (`ours:`) and asserts this driver's answer; those rows are the README's table of differences.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use cert_manager_csi_driver::attributes::{
    self, DEFAULT_DURATION, KeyAlgorithm, KeyEncoding, KeyUsage, VolumeAttributes, key,
};
use cert_manager_csi_driver::renewal::renewal_time;

/// The password every vector uses: no message may show it.
const PASSWORD: &str = "hunter2-secret";

/// What the Go driver does with a context.
enum Expect {
    /// Accepted; the check says what must be on the request.
    Accept(fn(&VolumeAttributes) -> bool),
    /// Refused, with a problem naming `key` whose message contains `fragment`.
    Refuse(&'static str, &'static str),
}

use Expect::{Accept, Refuse};

struct Vector {
    rule: &'static str,
    set: &'static [(&'static str, &'static str)],
    remove: &'static [&'static str],
    expect: Expect,
}

const fn v(
    rule: &'static str,
    set: &'static [(&'static str, &'static str)],
    expect: Expect,
) -> Vector {
    Vector {
        rule,
        set,
        remove: &[],
        expect,
    }
}

/// A correct pod's context, as kubelet sends it.
fn base_context() -> HashMap<String, String> {
    [
        (key::EPHEMERAL, "true"),
        (key::POD_NAME, "web-0"),
        (key::POD_NAMESPACE, "prod"),
        (key::POD_UID, "2f0c9a4e-0000-4000-8000-000000000001"),
        (key::SERVICE_ACCOUNT_NAME, "web"),
        (key::ISSUER_NAME, "ca-issuer"),
        (key::DNS_NAMES, "web-0.prod.svc"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn any(_: &VolumeAttributes) -> bool {
    true
}

fn cn(request: &VolumeAttributes) -> Option<&str> {
    request.spec.subject.common_name()
}

fn warned(request: &VolumeAttributes, fragment: &str) -> bool {
    request.warnings.iter().any(|w| w.contains(fragment))
}

const WITHOUT_ENABLE: &str = "cannot use attribute without \"csi.cert-manager.io/pkcs12-enable\" set to \"true\" or \"false\"";

fn vectors() -> Vec<Vector> {
    vec![
        // ---- defaults.go setDefaultIfEmpty: an empty value is the default ----------------------
        v(
            "setDefaultIfEmpty issuer-kind",
            &[(key::ISSUER_KIND, "")],
            Accept(|r| r.spec.issuer.kind == "Issuer"),
        ),
        v(
            "setDefaultIfEmpty issuer-group",
            &[(key::ISSUER_GROUP, "")],
            Accept(|r| r.spec.issuer.group == "cert-manager.io"),
        ),
        v(
            "setDefaultIfEmpty is-ca",
            &[(key::IS_CA, "")],
            Accept(|r| !r.spec.is_ca),
        ),
        v(
            "setDefaultIfEmpty reuse-private-key",
            &[(key::REUSE_PRIVATE_KEY, "")],
            Accept(|r| !r.spec.reuse_private_key),
        ),
        v(
            "setDefaultIfEmpty duration",
            &[(key::DURATION, "")],
            Accept(|r| r.spec.duration == DEFAULT_DURATION),
        ),
        v(
            "ParseDuration 0s: sent as 0s, with a warning",
            &[(key::DURATION, "0s")],
            Accept(|r| r.spec.duration.is_zero() && warned(r, "expired when it arrives")),
        ),
        v(
            "ParseDuration -0s is zero",
            &[(key::DURATION, "-0s")],
            Accept(|r| r.spec.duration.is_zero()),
        ),
        v(
            "ParseDuration 500ms: sent as written",
            &[(key::DURATION, "500ms")],
            Accept(|r| r.spec.duration == Duration::from_millis(500)),
        ),
        v(
            "ours: a negative duration is refused (Go signs a certificate never valid)",
            &[(key::DURATION, "-1h")],
            Refuse(key::DURATION, "negative"),
        ),
        v(
            "setDefaultIfEmpty key-usages",
            &[(key::KEY_USAGES, "")],
            Accept(|r| r.spec.usages == [KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment]),
        ),
        v(
            "setDefaultIfEmpty key-algorithm",
            &[(key::KEY_ALGORITHM, "")],
            Accept(|r| r.spec.key.algorithm == KeyAlgorithm::Rsa),
        ),
        v(
            "setDefaultIfEmpty key-encoding",
            &[(key::KEY_ENCODING, "")],
            Accept(|r| r.spec.key.encoding == KeyEncoding::Pkcs1),
        ),
        v(
            "setDefaultIfEmpty key-size RSA",
            &[(key::KEY_SIZE, "")],
            Accept(|r| r.spec.key.size == 2048),
        ),
        v(
            "setDefaultIfEmpty key-size ECDSA",
            &[
                (key::KEY_ALGORITHM, "ECDSA"),
                (key::KEY_SIZE, ""),
                (key::KEY_ENCODING, ""),
            ],
            Accept(|r| r.spec.key.size == 256 && r.spec.key.encoding == KeyEncoding::Pkcs8),
        ),
        v(
            "setDefaultIfEmpty key-size Ed25519",
            &[(key::KEY_ALGORITHM, "Ed25519"), (key::KEY_SIZE, "")],
            Accept(|r| r.spec.key.algorithm == KeyAlgorithm::Ed25519),
        ),
        v(
            "setDefaultIfEmpty ca-file",
            &[(key::CA_FILE, "")],
            Accept(|r| r.spec.files.ca == "ca.crt"),
        ),
        v(
            "setDefaultIfEmpty certificate-file",
            &[(key::CERTIFICATE_FILE, "")],
            Accept(|r| r.spec.files.certificate == "tls.crt"),
        ),
        v(
            "setDefaultIfEmpty privatekey-file",
            &[(key::PRIVATE_KEY_FILE, "")],
            Accept(|r| r.spec.files.private_key == "tls.key"),
        ),
        v(
            "setDefaultIfEmpty pkcs12-filename (enable true)",
            &[
                (key::PKCS12_ENABLE, "true"),
                (key::PKCS12_PASSWORD, PASSWORD),
                (key::PKCS12_FILENAME, ""),
            ],
            Accept(|r| {
                r.spec
                    .pkcs12
                    .as_ref()
                    .is_some_and(|p| p.file_name == "keystore.p12")
            }),
        ),
        v(
            "requestgen serialnumber: len > 0 gate",
            &[(key::SERIAL_NUMBER, ""), (key::COMMON_NAME, "web")],
            Accept(|r| !r.spec.subject.to_string().contains("SERIALNUMBER")),
        ),
        // ---- calculateNextIssuanceTime: renew-before ------------------------------------------
        v(
            "renew-before 0s: renew at notAfter",
            &[(key::RENEW_BEFORE, "0s")],
            Accept(|r| r.spec.renew_before == Some(Duration::ZERO)),
        ),
        v(
            "renew-before 0",
            &[(key::RENEW_BEFORE, "0")],
            Accept(|r| r.spec.renew_before == Some(Duration::ZERO)),
        ),
        v(
            "renew-before -0s is zero",
            &[(key::RENEW_BEFORE, "-0s")],
            Accept(|r| r.spec.renew_before == Some(Duration::ZERO)),
        ),
        v(
            "renew-before under 1s",
            &[(key::RENEW_BEFORE, "500ms")],
            Accept(|r| r.spec.renew_before == Some(Duration::from_millis(500))),
        ),
        v(
            "renew-before present but empty: ParseDuration error",
            &[(key::RENEW_BEFORE, "")],
            Refuse(key::RENEW_BEFORE, ""),
        ),
        v(
            "ours: renew-before negative (Go serves an expired certificate)",
            &[(key::RENEW_BEFORE, "-1h")],
            Refuse(key::RENEW_BEFORE, "negative"),
        ),
        // ---- validation.go key-usages: an empty item is not a key usage ------------------------
        v(
            "keyUsages empty last item",
            &[(key::KEY_USAGES, "server auth,")],
            Refuse(key::KEY_USAGES, "empty entry"),
        ),
        v(
            "keyUsages empty middle item",
            &[(key::KEY_USAGES, "server auth,,client auth")],
            Refuse(key::KEY_USAGES, "empty entry"),
        ),
        v(
            "keyUsages blank",
            &[(key::KEY_USAGES, " ")],
            Refuse(key::KEY_USAGES, "empty entry"),
        ),
        v(
            "keyUsages trimmed items",
            &[(key::KEY_USAGES, " server auth , client auth ")],
            Accept(|r| r.spec.usages.len() == 2),
        ),
        // ---- requestgen splitList + net.ParseIP ----------------------------------------------
        v(
            "ip-sans empty item",
            &[(key::IP_SANS, "10.0.0.1,")],
            Refuse(key::IP_SANS, "empty entry"),
        ),
        v(
            "ip-sans blank",
            &[(key::IP_SANS, " ")],
            Refuse(key::IP_SANS, "empty entry"),
        ),
        v(
            "ip-sans empty middle item",
            &[(key::IP_SANS, "10.0.0.1,,::1")],
            Refuse(key::IP_SANS, "empty entry"),
        ),
        v(
            "ip-sans empty value: none",
            &[(key::IP_SANS, "")],
            Accept(|r| r.spec.ip_sans.is_empty()),
        ),
        // ---- requestgen splitList + url.ParseRequestURI ---------------------------------------
        v(
            "uri-sans empty item",
            &[(key::URI_SANS, "spiffe://a/b,")],
            Refuse(key::URI_SANS, "empty entry"),
        ),
        v(
            "uri-sans blank",
            &[(key::URI_SANS, " ")],
            Refuse(key::URI_SANS, "empty entry"),
        ),
        v(
            "ParseRequestURI absolute path",
            &[(key::URI_SANS, "/path/x")],
            Accept(|r| r.spec.uri_sans == ["/path/x"]),
        ),
        v(
            "ParseRequestURI asterisk",
            &[(key::URI_SANS, "*")],
            Accept(|r| r.spec.uri_sans == ["*"]),
        ),
        v(
            "ParseRequestURI scheme with empty opaque",
            &[(key::URI_SANS, "foo:")],
            Accept(|r| r.spec.uri_sans == ["foo:"]),
        ),
        v(
            "ParseRequestURI opaque",
            &[(key::URI_SANS, "urn:uuid:1234")],
            Accept(|r| r.spec.uri_sans == ["urn:uuid:1234"]),
        ),
        v(
            "ParseRequestURI lower-cases the scheme",
            &[(key::URI_SANS, "SPIFFE://Cluster.local/Ns")],
            Accept(|r| r.spec.uri_sans == ["spiffe://Cluster.local/Ns"]),
        ),
        v(
            "ParseRequestURI empty port",
            &[(key::URI_SANS, "spiffe://a:/x")],
            Accept(|r| r.spec.uri_sans.len() == 1),
        ),
        v(
            "ParseRequestURI IPv6 host and port",
            &[(key::URI_SANS, "https://u@[::1]:8443/x?y")],
            Accept(|r| r.spec.uri_sans.len() == 1),
        ),
        v(
            "ParseRequestURI bad port",
            &[(key::URI_SANS, "spiffe://a:b")],
            Refuse(key::URI_SANS, "invalid port \":b\" after host"),
        ),
        v(
            "ParseRequestURI bad escape in path",
            &[(key::URI_SANS, "spiffe://a/%zz")],
            Refuse(key::URI_SANS, "invalid URL escape \"%zz\""),
        ),
        v(
            "ParseRequestURI truncated escape",
            &[(key::URI_SANS, "spiffe://a/b%4")],
            Refuse(key::URI_SANS, "invalid URL escape \"%4\""),
        ),
        v(
            "ParseRequestURI ASCII escape in host",
            &[(key::URI_SANS, "spiffe://a%41/x")],
            Refuse(key::URI_SANS, "invalid URL escape \"%41\""),
        ),
        v(
            "ParseRequestURI bad host character",
            &[(key::URI_SANS, "spiffe://a{b/x")],
            Refuse(key::URI_SANS, "in host name"),
        ),
        v(
            "ParseRequestURI missing ']'",
            &[(key::URI_SANS, "spiffe://[::1/x")],
            Refuse(key::URI_SANS, "missing ']'"),
        ),
        v(
            "ParseRequestURI no scheme",
            &[(key::URI_SANS, "relative/path")],
            Refuse(key::URI_SANS, "no scheme"),
        ),
        v(
            "ParseRequestURI missing protocol scheme",
            &[(key::URI_SANS, ":x")],
            Refuse(key::URI_SANS, "missing protocol scheme"),
        ),
        v(
            "ours: uri-sans with a space (Go percent-encodes it)",
            &[(key::URI_SANS, "spiffe://a/b c")],
            Refuse(key::URI_SANS, "whitespace"),
        ),
        // ---- requestgen dns-names: no syntax check but IA5 ------------------------------------
        v(
            "ours: dns-names empty item dropped (Go encodes an empty dNSName)",
            &[(key::DNS_NAMES, "a.example.com,")],
            Accept(|r| r.spec.dns_names == ["a.example.com"]),
        ),
        v(
            "IA5: dns-names non-ASCII",
            &[(key::DNS_NAMES, "é.example.com")],
            Refuse(key::DNS_NAMES, "not a DNS name"),
        ),
        v(
            "no length limit on dns-names (label over 63)",
            &[(
                key::DNS_NAMES,
                "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd.example.com",
            )],
            Accept(|r| r.spec.dns_names.len() == 1 && warned(r, "63 per label")),
        ),
        // ---- strconv.Atoi / ParseInt ----------------------------------------------------------
        v(
            "Atoi key-size with +",
            &[(key::KEY_SIZE, "+4096")],
            Accept(|r| r.spec.key.size == 4096),
        ),
        v(
            "Atoi ECDSA key-size with +",
            &[(key::KEY_ALGORITHM, "ECDSA"), (key::KEY_SIZE, "+384")],
            Accept(|r| r.spec.key.size == 384),
        ),
        v(
            "Atoi key-size leading space",
            &[(key::KEY_SIZE, " 2048")],
            Refuse(key::KEY_SIZE, ""),
        ),
        v(
            "Atoi key-size trailing space",
            &[(key::KEY_SIZE, "2048 ")],
            Refuse(key::KEY_SIZE, ""),
        ),
        v(
            "Atoi key-size negative",
            &[(key::KEY_SIZE, "-2048")],
            Refuse(key::KEY_SIZE, ""),
        ),
        v(
            "ParseInt fs-group with +",
            &[(key::FS_GROUP, "+1000")],
            Accept(|r| r.spec.fs_group == Some(1000)),
        ),
        v(
            "ParseInt fs-group leading space",
            &[(key::FS_GROUP, " 1000")],
            Refuse(key::FS_GROUP, ""),
        ),
        v(
            "ParseInt fs-group trailing space",
            &[(key::FS_GROUP, "1000 ")],
            Refuse(key::FS_GROUP, ""),
        ),
        v(
            "ParseInt fs-group empty",
            &[(key::FS_GROUP, "")],
            Refuse(key::FS_GROUP, ""),
        ),
        v(
            "fs-group 0",
            &[(key::FS_GROUP, "0")],
            Refuse(key::FS_GROUP, ""),
        ),
        v(
            "fs-group max",
            &[(key::FS_GROUP, "4294967295")],
            Accept(|r| r.spec.fs_group == Some(u32::MAX)),
        ),
        v(
            "fs-group over max",
            &[(key::FS_GROUP, "4294967296")],
            Refuse(key::FS_GROUP, ""),
        ),
        // ---- issuerRef: sent verbatim ---------------------------------------------------------
        v(
            "issuer-name required",
            &[(key::ISSUER_NAME, "")],
            Refuse(key::ISSUER_NAME, "required"),
        ),
        v(
            "issuer-name verbatim: surrounding space",
            &[(key::ISSUER_NAME, " ca-issuer ")],
            Refuse(key::ISSUER_NAME, "whitespace"),
        ),
        v(
            "issuer-name verbatim: blank",
            &[(key::ISSUER_NAME, "  ")],
            Refuse(key::ISSUER_NAME, "whitespace"),
        ),
        v(
            "issuer-kind verbatim",
            &[(key::ISSUER_KIND, " ClusterIssuer")],
            Refuse(key::ISSUER_KIND, "whitespace"),
        ),
        v(
            "issuer-group verbatim",
            &[(key::ISSUER_GROUP, "cert-manager.io ")],
            Refuse(key::ISSUER_GROUP, "whitespace"),
        ),
        v(
            "issuer fields as written",
            &[
                (key::ISSUER_KIND, "ClusterIssuer"),
                (key::ISSUER_GROUP, "example.com"),
            ],
            Accept(|r| {
                r.spec.issuer.kind == "ClusterIssuer" && r.spec.issuer.group == "example.com"
            }),
        ),
        // ---- os.Expand ------------------------------------------------------------------------
        v(
            "os.Expand $$ is a variable",
            &[(key::COMMON_NAME, "a$$b")],
            Refuse(key::COMMON_NAME, "unknown variable"),
        ),
        v(
            "os.Expand $* is a variable",
            &[(key::COMMON_NAME, "$*")],
            Refuse(key::COMMON_NAME, "unknown variable"),
        ),
        v(
            "os.Expand $# is a variable",
            &[(key::DNS_NAMES, "$#.example.com")],
            Refuse(key::DNS_NAMES, "unknown variable"),
        ),
        v(
            "os.Expand $@ is a variable",
            &[(key::URI_SANS, "spiffe://a/$@")],
            Refuse(key::URI_SANS, "unknown variable"),
        ),
        v(
            "os.Expand $! is a variable",
            &[(key::COMMON_NAME, "$!")],
            Refuse(key::COMMON_NAME, "unknown variable"),
        ),
        v(
            "os.Expand $? is a variable",
            &[(key::COMMON_NAME, "$?")],
            Refuse(key::COMMON_NAME, "unknown variable"),
        ),
        v(
            "os.Expand $- is a variable",
            &[(key::COMMON_NAME, "$-")],
            Refuse(key::COMMON_NAME, "unknown variable"),
        ),
        v(
            "os.Expand $1 is a variable",
            &[(key::COMMON_NAME, "$1x")],
            Refuse(key::COMMON_NAME, "unknown variable"),
        ),
        v(
            "os.Expand ${$}",
            &[(key::COMMON_NAME, "${$}")],
            Refuse(key::COMMON_NAME, "unknown variable"),
        ),
        v(
            "os.Expand unknown names the known",
            &[(key::COMMON_NAME, "${POD_HOST}")],
            Refuse(key::COMMON_NAME, "${SERVICE_ACCOUNT_NAME}"),
        ),
        v(
            "os.Expand ${} removed",
            &[(key::COMMON_NAME, "a${}b")],
            Accept(|r| cn(r) == Some("ab")),
        ),
        v(
            "os.Expand unclosed ${ removed",
            &[(key::COMMON_NAME, "x${POD_NAME")],
            Accept(|r| cn(r) == Some("xPOD_NAME")),
        ),
        v(
            "os.Expand $ at the end",
            &[(key::COMMON_NAME, "cost$")],
            Accept(|r| cn(r) == Some("cost$")),
        ),
        v(
            "os.Expand $ before a non-name",
            &[(key::COMMON_NAME, "a$.b")],
            Accept(|r| cn(r) == Some("a$.b")),
        ),
        v(
            "os.Expand greedy name",
            &[(key::COMMON_NAME, "$POD_NAME.x")],
            Accept(|r| cn(r) == Some("web-0.x")),
        ),
        Vector {
            rule: "os.Expand missing SERVICE_ACCOUNT_NAME is empty",
            set: &[(key::COMMON_NAME, "sa-${SERVICE_ACCOUNT_NAME}")],
            remove: &[key::SERVICE_ACCOUNT_NAME],
            expect: Accept(|r| cn(r) == Some("sa-")),
        },
        v(
            "os.Expand POD_IP is not a name variable",
            &[(key::DNS_NAMES, "${POD_IP}.x")],
            Refuse(key::DNS_NAMES, "POD_IP"),
        ),
        // ---- generator.go subject (cert-manager pki.UnmarshalSubjectStringToRDNSequence) -------
        v(
            "literal-subject empty: the subject attributes are used",
            &[(key::LITERAL_SUBJECT, ""), (key::COMMON_NAME, "x")],
            Accept(|r| cn(r) == Some("x")),
        ),
        v(
            "literal-subject blank: an empty subject, common-name ignored",
            &[(key::LITERAL_SUBJECT, "  "), (key::COMMON_NAME, "x")],
            Accept(|r| r.spec.subject.is_empty()),
        ),
        v(
            "literal-subject ; separates RDNs",
            &[(key::LITERAL_SUBJECT, "CN=a;O=b")],
            Accept(|r| cn(r) == Some("a") && r.spec.subject.rdns.len() == 2),
        ),
        v(
            "literal-subject dotted OID",
            &[(key::LITERAL_SUBJECT, "CN=a,2.5.4.17=N1")],
            Accept(|r| r.spec.subject.rdns.len() == 2),
        ),
        v(
            "literal-subject keywords are case-sensitive",
            &[(key::LITERAL_SUBJECT, "cn=a")],
            Refuse(key::LITERAL_SUBJECT, "unknown attribute type"),
        ),
        v(
            "literal-subject only cert-manager's ten keywords",
            &[(key::LITERAL_SUBJECT, "CN=a,E=a@example.com")],
            Refuse(key::LITERAL_SUBJECT, "unknown attribute type"),
        ),
        v(
            "literal-subject POSTALCODE is not one of them",
            &[(key::LITERAL_SUBJECT, "CN=a,POSTALCODE=1")],
            Refuse(key::LITERAL_SUBJECT, "unknown attribute type"),
        ),
        v(
            "literal-subject =# anywhere",
            &[(key::LITERAL_SUBJECT, "CN=a=#b")],
            Refuse(key::LITERAL_SUBJECT, "=#"),
        ),
        v(
            "literal-subject unescaped <",
            &[(key::LITERAL_SUBJECT, "CN=<a>")],
            Refuse(key::LITERAL_SUBJECT, "unescaped"),
        ),
        v(
            "strings.Split lists: every comma, entries as written",
            &[(key::ORGANIZATIONS, "A, B,,C")],
            Accept(|r| {
                r.spec.subject.rdns[0]
                    .iter()
                    .map(|value| value.value.as_str())
                    .eq(["A", " B", "", "C"])
            }),
        ),
        v(
            "strings.Split lists: no backslash escape",
            &[(key::ORGANIZATIONS, r"A\,B")],
            Accept(|r| r.spec.subject.rdns[0].len() == 2),
        ),
        v(
            "serialnumber as written",
            &[(key::SERIAL_NUMBER, " 42 ")],
            Accept(|r| {
                r.spec
                    .subject
                    .rdns
                    .iter()
                    .flatten()
                    .any(|value| value.value == " 42 ")
            }),
        ),
        v(
            "no upper bound on a common name",
            &[(
                key::COMMON_NAME,
                "a-common-name-that-is-longer-than-sixty-four-characters-long-yes-it-is",
            )],
            Accept(|r| cn(r).is_some_and(|cn| cn.len() > 64)),
        ),
        // ---- nothing named: accepted ---------------------------------------------------------
        Vector {
            rule: "no CN and no SANs accepted",
            set: &[],
            remove: &[key::DNS_NAMES],
            expect: Accept(|r| warned(r, "names nothing")),
        },
        v(
            "no CN, dns-names only commas",
            &[(key::DNS_NAMES, ",")],
            Accept(|r| r.spec.dns_names.is_empty() && warned(r, "names nothing")),
        ),
        // ---- validation.go pkcs12Values ------------------------------------------------------
        v(
            "pkcs12Values filename without enable",
            &[(key::PKCS12_FILENAME, "k.p12")],
            Refuse(key::PKCS12_FILENAME, WITHOUT_ENABLE),
        ),
        v(
            "pkcs12Values empty filename without enable",
            &[(key::PKCS12_FILENAME, "")],
            Refuse(key::PKCS12_FILENAME, WITHOUT_ENABLE),
        ),
        v(
            "pkcs12Values password without enable",
            &[(key::PKCS12_PASSWORD, PASSWORD)],
            Refuse(key::PKCS12_PASSWORD, WITHOUT_ENABLE),
        ),
        v(
            "pkcs12Values password redacted",
            &[(key::PKCS12_PASSWORD, PASSWORD)],
            Refuse(key::PKCS12_PASSWORD, "\"<redacted>\""),
        ),
        v(
            "pkcs12Values empty password without enable",
            &[(key::PKCS12_PASSWORD, "")],
            Refuse(key::PKCS12_PASSWORD, WITHOUT_ENABLE),
        ),
        v(
            "pkcs12Values enable empty",
            &[(key::PKCS12_ENABLE, "")],
            Refuse(key::PKCS12_ENABLE, "\"true\" or \"false\""),
        ),
        v(
            "pkcs12Values enable empty with password",
            &[(key::PKCS12_ENABLE, ""), (key::PKCS12_PASSWORD, PASSWORD)],
            Refuse(key::PKCS12_ENABLE, "\"true\" or \"false\""),
        ),
        v(
            "pkcs12Values enable True",
            &[
                (key::PKCS12_ENABLE, "True"),
                (key::PKCS12_PASSWORD, PASSWORD),
            ],
            Refuse(key::PKCS12_ENABLE, ""),
        ),
        v(
            "pkcs12Values enable true needs a password",
            &[(key::PKCS12_ENABLE, "true")],
            Refuse(key::PKCS12_PASSWORD, "required"),
        ),
        v(
            "pkcs12Values enable false needs a password",
            &[(key::PKCS12_ENABLE, "false")],
            Refuse(key::PKCS12_PASSWORD, "required"),
        ),
        v(
            "pkcs12Values enable false, empty password",
            &[(key::PKCS12_ENABLE, "false"), (key::PKCS12_PASSWORD, "")],
            Refuse(key::PKCS12_PASSWORD, "required"),
        ),
        v(
            "pkcs12Values enable false writes nothing",
            &[
                (key::PKCS12_ENABLE, "false"),
                (key::PKCS12_PASSWORD, PASSWORD),
                (key::PKCS12_FILENAME, "k.p12"),
            ],
            Accept(|r| r.spec.pkcs12.is_none()),
        ),
        v(
            "pkcs12Values enable false checks the filename",
            &[
                (key::PKCS12_ENABLE, "false"),
                (key::PKCS12_PASSWORD, PASSWORD),
                (key::PKCS12_FILENAME, "..k.p12"),
            ],
            Refuse(key::PKCS12_FILENAME, "'..'"),
        ),
        v(
            "uniqueFilePaths enable false, default keystore.p12",
            &[
                (key::PKCS12_ENABLE, "false"),
                (key::PKCS12_PASSWORD, PASSWORD),
                (key::CERTIFICATE_FILE, "keystore.p12"),
            ],
            Refuse(key::CERTIFICATE_FILE, "distinct"),
        ),
        v(
            "uniqueFilePaths enable true",
            &[
                (key::PKCS12_ENABLE, "true"),
                (key::PKCS12_PASSWORD, PASSWORD),
                (key::PKCS12_FILENAME, "tls.key"),
            ],
            Refuse(key::PKCS12_FILENAME, "distinct"),
        ),
        v(
            "pkcs12 enable true writes keystore.p12",
            &[
                (key::PKCS12_ENABLE, "true"),
                (key::PKCS12_PASSWORD, PASSWORD),
            ],
            Accept(|r| {
                r.spec.pkcs12.as_ref().is_some_and(|p| {
                    p.file_name == "keystore.p12" && p.password.0.as_str() == PASSWORD
                })
            }),
        ),
        // This driver's own keystores follow the same rule.
        v(
            "ours, as pkcs12Values: jks-password without jks-enable",
            &[(key::JKS_PASSWORD, PASSWORD)],
            Refuse(
                key::JKS_PASSWORD,
                "without \"csi.cert-manager.io/jks-enable\"",
            ),
        ),
        v(
            "ours, as pkcs12Values: jks-filename without jks-enable",
            &[(key::JKS_FILENAME, "k.jks")],
            Refuse(
                key::JKS_FILENAME,
                "without \"csi.cert-manager.io/jks-enable\"",
            ),
        ),
        v(
            "ours, as pkcs12Values: pkcs12-truststore-filename without its enable",
            &[
                (key::PKCS12_ENABLE, "true"),
                (key::PKCS12_PASSWORD, PASSWORD),
                (key::PKCS12_TRUSTSTORE_FILENAME, "t.p12"),
            ],
            Refuse(
                key::PKCS12_TRUSTSTORE_FILENAME,
                "without \"csi.cert-manager.io/pkcs12-truststore-enable\"",
            ),
        ),
        v(
            "ours, as pkcs12Values: jks-enable false needs a password",
            &[(key::JKS_ENABLE, "false")],
            Refuse(key::JKS_PASSWORD, "required"),
        ),
        // ---- types.go: the keystore-pkcs12-* spellings are not Go keys -----------------------
        v(
            "keystore-pkcs12-enable is an unknown key",
            &[("csi.cert-manager.io/keystore-pkcs12-enable", "true")],
            Accept(|r| {
                r.spec.pkcs12.is_none()
                    && warned(r, "did you mean csi.cert-manager.io/pkcs12-enable")
            }),
        ),
        v(
            "keystore-pkcs12-password is an unknown key",
            &[
                ("csi.cert-manager.io/keystore-pkcs12-enable", "true"),
                ("csi.cert-manager.io/keystore-pkcs12-password", PASSWORD),
                ("csi.cert-manager.io/keystore-pkcs12-filename", "../x"),
            ],
            Accept(|r| r.spec.pkcs12.is_none() && r.unknown_keys.len() == 3),
        ),
        v("base context", &[], Accept(any)),
    ]
}

#[test]
fn go_driver_vectors() {
    let mut failures = Vec::new();
    for vector in vectors() {
        let mut context = base_context();
        for removed in vector.remove {
            context.remove(*removed);
        }
        for (k, value) in vector.set {
            context.insert(k.to_string(), value.to_string());
        }
        let result = attributes::parse_volume_context(&context);
        if let Err(error) = &result
            && error.to_string().contains(PASSWORD)
        {
            failures.push(format!(
                "{}: the message shows the password: {error}",
                vector.rule
            ));
        }
        match (&vector.expect, &result) {
            (Accept(check), Ok(request)) if check(request) => {}
            (Accept(_), Ok(request)) => failures.push(format!(
                "{}: accepted, but not as Go: {:?} warnings {:?}",
                vector.rule, request.spec, request.warnings
            )),
            (Accept(_), Err(error)) => {
                failures.push(format!("{}: refused, Go accepts: {error}", vector.rule))
            }
            (Refuse(k, fragment), Err(error)) => {
                if !error
                    .0
                    .iter()
                    .any(|problem| problem.key == *k && problem.to_string().contains(fragment))
                {
                    failures.push(format!(
                        "{}: refused, but not naming {k} with {fragment:?}: {error}",
                        vector.rule
                    ));
                }
            }
            (Refuse(..), Ok(_)) => failures.push(format!("{}: accepted, Go refuses", vector.rule)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `calculateNextIssuanceTime`: `renew-before: 0s` renews at notAfter, `500ms` half a second
/// before; a renew-before not shorter than the lifetime falls back to two thirds of it.
#[test]
fn renew_before_zero_and_sub_second_renew_at_not_after_minus_it() {
    let not_before = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let not_after = not_before + Duration::from_secs(3600);
    assert_eq!(
        renewal_time(not_before, not_after, Some(Duration::ZERO)),
        not_after
    );
    assert_eq!(
        renewal_time(not_before, not_after, Some(Duration::from_millis(500))),
        not_after - Duration::from_millis(500)
    );
    assert_eq!(
        renewal_time(not_before, not_after, Some(Duration::from_secs(3600))),
        not_after - Duration::from_secs(1200)
    );
}
