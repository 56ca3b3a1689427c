//! Pod readiness gates (`--pod-readiness-gate`, as the Go driver spells them): conditions on the
//! pod that must all hold before a volume's certificate is issued. kubelet publishes a volume
//! before the pod's sandbox and network exist, so a certificate that must carry the pod's own IP
//! can only be issued once the pod has one.
//!
//! Pure: a gate is judged against [`PodFacts`], the few fields of a Pod the node's pod watch keeps.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// Which pod address satisfies a `pod-ip` gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    Any,
    V4,
    V6,
}

impl IpFamily {
    fn admits(self, ip: &IpAddr) -> bool {
        match self {
            IpFamily::Any => true,
            IpFamily::V4 => ip.is_ipv4(),
            IpFamily::V6 => ip.is_ipv6(),
        }
    }
}

/// One gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// `pod-ip:any|ipv4|ipv6`: `status.podIPs` holds an address of that family.
    PodIp(IpFamily),
    /// `pod-condition:<Type>[=<Status>]`: the condition has that status (`True` by default).
    Condition { kind: String, status: String },
    /// `pod-annotation:<key>`: the annotation is present and not empty.
    Annotation(String),
}

impl FromStr for Gate {
    type Err = String;

    fn from_str(spec: &str) -> Result<Gate, String> {
        let bad = |why: &str| format!("invalid --pod-readiness-gate {spec:?}: {why}");
        let (kind, value) = spec
            .split_once(':')
            .ok_or_else(|| bad("expected <type>:<value>, e.g. pod-ip:any"))?;
        match kind {
            "pod-ip" => match value {
                "any" => Ok(Gate::PodIp(IpFamily::Any)),
                "ipv4" => Ok(Gate::PodIp(IpFamily::V4)),
                "ipv6" => Ok(Gate::PodIp(IpFamily::V6)),
                _ => Err(bad("pod-ip takes any, ipv4 or ipv6")),
            },
            "pod-condition" => {
                let (condition, status) = value.split_once('=').unwrap_or((value, "True"));
                if condition.is_empty() {
                    return Err(bad(
                        "pod-condition needs a condition type, e.g. pod-condition:Ready",
                    ));
                }
                let status = match status.to_ascii_lowercase().as_str() {
                    "true" => "True",
                    "false" => "False",
                    "unknown" => "Unknown",
                    _ => return Err(bad("a condition status is True, False or Unknown")),
                };
                Ok(Gate::Condition {
                    kind: condition.to_string(),
                    status: status.to_string(),
                })
            }
            "pod-annotation" if !value.is_empty() => Ok(Gate::Annotation(value.to_string())),
            "pod-annotation" => Err(bad("pod-annotation needs an annotation key")),
            _ => Err(bad(
                "the type is one of pod-ip, pod-condition, pod-annotation",
            )),
        }
    }
}

/// The gate as it would be given on the command line (normalised).
impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gate::PodIp(IpFamily::Any) => f.write_str("pod-ip:any"),
            Gate::PodIp(IpFamily::V4) => f.write_str("pod-ip:ipv4"),
            Gate::PodIp(IpFamily::V6) => f.write_str("pod-ip:ipv6"),
            Gate::Condition { kind, status } => write!(f, "pod-condition:{kind}={status}"),
            Gate::Annotation(key) => write!(f, "pod-annotation:{key}"),
        }
    }
}

/// What the gates look at in a Pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodFacts {
    pub uid: String,
    /// `status.podIPs`, in order (the first is the pod's primary address).
    pub ips: Vec<IpAddr>,
    /// `status.conditions`: type → status.
    pub conditions: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `metadata.deletionTimestamp` is set: the pod is going away.
    pub deleting: bool,
}

impl Gate {
    pub fn is_met(&self, pod: &PodFacts) -> bool {
        match self {
            Gate::PodIp(family) => pod.ips.iter().any(|ip| family.admits(ip)),
            Gate::Condition { kind, status } => pod.conditions.get(kind) == Some(status),
            Gate::Annotation(key) => pod.annotations.get(key).is_some_and(|v| !v.is_empty()),
        }
    }

    /// Whether this gate waits for the pod to have an address.
    pub fn waits_for_ip(&self) -> bool {
        matches!(self, Gate::PodIp(_))
    }
}

/// The first gate the pod does not meet yet, in the order they were given.
pub fn first_unmet<'a>(gates: &'a [Gate], pod: &PodFacts) -> Option<&'a Gate> {
    gates.iter().find(|gate| !gate.is_met(pod))
}

/// The flags' rule, as the Go driver has it: gates make sense only when a publish may return
/// before the certificate is there.
pub fn check_flags(gates: &[Gate], continue_on_not_ready: bool) -> Result<(), String> {
    if !gates.is_empty() && !continue_on_not_ready {
        return Err("--pod-readiness-gate requires --continue-on-not-ready=true".to_string());
    }
    Ok(())
}

/// `--gate-backoff-*`: how often a pending volume's pod is looked at again when no watch event
/// woke it (the watch wakes it at once on any change; this only bounds a missed event).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateBackoff {
    pub initial: Duration,
    pub factor: f64,
    pub jitter: f64,
    /// Zero: no cap.
    pub cap: Duration,
}

impl Default for GateBackoff {
    fn default() -> Self {
        GateBackoff {
            initial: Duration::from_secs(1),
            factor: 2.0,
            jitter: 0.5,
            cap: Duration::from_secs(10),
        }
    }
}

impl GateBackoff {
    /// Rejects values that would make no sense (a start-up error naming the flag).
    pub fn validate(&self) -> Result<(), String> {
        if self.initial.is_zero() {
            return Err("--gate-backoff-duration must be greater than 0".into());
        }
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return Err(format!(
                "--gate-backoff-factor must be at least 1.0, not {}",
                self.factor
            ));
        }
        if !(self.jitter.is_finite() && self.jitter >= 0.0) {
            return Err(format!(
                "--gate-backoff-jitter must be 0 or more, not {}",
                self.jitter
            ));
        }
        Ok(())
    }

    /// The wait before look number `attempt` (0 = the first re-check), before jitter: `initial ×
    /// factor^attempt`, at most `cap`.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let grown = self.initial.as_secs_f64() * self.factor.powi(attempt.min(64) as i32);
        let capped = if self.cap.is_zero() {
            grown
        } else {
            grown.min(self.cap.as_secs_f64())
        };
        // A day bounds an uncapped growth well inside what a Duration holds.
        Duration::from_secs_f64(capped.min(86_400.0))
    }

    /// The wait before look number `attempt`, with up to `jitter × base` added (`unit` in 0..1);
    /// at most a day, whatever the flags say.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.base_delay(attempt).as_secs_f64();
        let jittered = base * (1.0 + self.jitter * unit.clamp(0.0, 1.0));
        Duration::try_from_secs_f64(jittered.min(86_400.0)).unwrap_or(Duration::from_secs(86_400))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ips: &[&str]) -> PodFacts {
        PodFacts {
            ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
            ..PodFacts::default()
        }
    }

    #[test]
    fn gate_specs_parse_and_print_normalised() {
        for (spec, shown) in [
            ("pod-ip:any", "pod-ip:any"),
            ("pod-ip:ipv4", "pod-ip:ipv4"),
            ("pod-ip:ipv6", "pod-ip:ipv6"),
            ("pod-condition:Ready", "pod-condition:Ready=True"),
            ("pod-condition:Ready=false", "pod-condition:Ready=False"),
            (
                "pod-condition:example.com/net=UNKNOWN",
                "pod-condition:example.com/net=Unknown",
            ),
            (
                "pod-annotation:example.com/ready",
                "pod-annotation:example.com/ready",
            ),
        ] {
            assert_eq!(spec.parse::<Gate>().unwrap().to_string(), shown, "{spec}");
        }
    }

    #[test]
    fn bad_gate_specs_are_named() {
        for spec in [
            "pod-ip",
            "pod-ip:ipv5",
            "pod-condition:",
            "pod-condition:Ready=maybe",
            "pod-annotation:",
            "node-ip:any",
            "",
        ] {
            let error = spec.parse::<Gate>().unwrap_err();
            assert!(
                error.contains(&format!("{spec:?}")) && error.contains("--pod-readiness-gate"),
                "{error}"
            );
        }
    }

    #[test]
    fn gates_are_judged_on_the_pod() {
        let any: Gate = "pod-ip:any".parse().unwrap();
        let v4: Gate = "pod-ip:ipv4".parse().unwrap();
        let v6: Gate = "pod-ip:ipv6".parse().unwrap();
        assert!(!any.is_met(&pod(&[])));
        assert!(any.is_met(&pod(&["10.0.0.7"])));
        assert!(v4.is_met(&pod(&["fd00::7", "10.0.0.7"])));
        assert!(!v4.is_met(&pod(&["fd00::7"])));
        assert!(v6.is_met(&pod(&["10.0.0.7", "fd00::7"])));
        assert!(!v6.is_met(&pod(&["10.0.0.7"])));

        let ready: Gate = "pod-condition:Ready".parse().unwrap();
        let mut facts = pod(&[]);
        assert!(!ready.is_met(&facts));
        facts.conditions.insert("Ready".into(), "False".into());
        assert!(!ready.is_met(&facts));
        facts.conditions.insert("Ready".into(), "True".into());
        assert!(ready.is_met(&facts));

        let annotated: Gate = "pod-annotation:example.com/ok".parse().unwrap();
        facts
            .annotations
            .insert("example.com/ok".into(), String::new());
        assert!(
            !annotated.is_met(&facts),
            "an empty annotation does not count"
        );
        facts
            .annotations
            .insert("example.com/ok".into(), "yes".into());
        assert!(annotated.is_met(&facts));

        let gates = [ready, annotated, any.clone()];
        assert_eq!(first_unmet(&gates, &facts), Some(&any));
        facts.ips.push("10.0.0.8".parse().unwrap());
        assert_eq!(first_unmet(&gates, &facts), None);
    }

    #[test]
    fn gates_need_continue_on_not_ready() {
        let gates = ["pod-ip:any".parse::<Gate>().unwrap()];
        assert_eq!(
            check_flags(&gates, false).unwrap_err(),
            "--pod-readiness-gate requires --continue-on-not-ready=true"
        );
        assert!(check_flags(&gates, true).is_ok());
        assert!(check_flags(&[], false).is_ok());
    }

    #[test]
    fn backoff_grows_by_the_factor_up_to_the_cap() {
        let backoff = GateBackoff::default();
        let seconds: Vec<f64> = (0..6)
            .map(|attempt| backoff.base_delay(attempt).as_secs_f64())
            .collect();
        assert_eq!(seconds, [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]);
        assert_eq!(backoff.delay(0, 1.0), Duration::from_millis(1500));
        let uncapped = GateBackoff {
            cap: Duration::ZERO,
            ..backoff
        };
        assert_eq!(uncapped.base_delay(5), Duration::from_secs(32));
        assert_eq!(uncapped.base_delay(u32::MAX), Duration::from_secs(86_400));
        let wild = GateBackoff {
            jitter: 1e15,
            ..uncapped
        };
        assert_eq!(
            wild.delay(3, 1.0),
            Duration::from_secs(86_400),
            "no overflow"
        );
        assert!(backoff.validate().is_ok());
        for bad in [
            GateBackoff {
                initial: Duration::ZERO,
                ..backoff
            },
            GateBackoff {
                factor: 0.5,
                ..backoff
            },
            GateBackoff {
                jitter: -1.0,
                ..backoff
            },
        ] {
            assert!(bad.validate().unwrap_err().starts_with("--gate-backoff-"));
        }
    }
}
