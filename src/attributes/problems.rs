//! How a volume context's problems are told: each names the key as the user wrote it and the bad
//! value, and all of them come back in one error.

use std::fmt;

/// One problem with one attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeProblem {
    pub key: String,
    pub value: Option<String>,
    pub reason: String,
}

/// Values longer than this are shown cut short in messages (a 1 MB value must not make a 1 MB
/// error that kubelet then cuts off anyway).
const SHOWN_VALUE_CHARS: usize = 300;

impl fmt::Display for AttributeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) if value.chars().count() > SHOWN_VALUE_CHARS => {
                let start: String = value.chars().take(SHOWN_VALUE_CHARS).collect();
                write!(
                    f,
                    "{}={start:?}… ({} bytes) {}",
                    self.key,
                    value.len(),
                    self.reason
                )
            }
            Some(value) => write!(f, "{}={value:?} {}", self.key, self.reason),
            None => write!(f, "{} {}", self.key, self.reason),
        }
    }
}

/// Every problem found in a volume context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidAttributes(pub Vec<AttributeProblem>);

impl fmt::Display for InvalidAttributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid volume attributes: ")?;
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}
