//! Reading one volume context: values by key (an empty one counting as unset where Go defaults
//! it), the common value shapes (booleans, durations, file names, lists), and every problem
//! collected rather than returned, so one answer lists all that is wrong.

use std::collections::HashMap;
use std::time::Duration;

use super::files::check_file_name;
use super::problems::AttributeProblem;
use super::spec::PodInfo;
use super::table::{self, Part};
use super::{expand, parse_go_duration};

/// Collects problems while reading one context.
pub(super) struct Reader<'a> {
    context: &'a HashMap<String, String>,
    pub problems: Vec<AttributeProblem>,
    /// The part being read, and every key read with the part that read it: tests check that
    /// each table row's part really reads its key.
    #[cfg(test)]
    reading: Option<Part>,
    #[cfg(test)]
    pub reads: std::cell::RefCell<Vec<(Option<Part>, &'static str)>>,
}

impl<'a> Reader<'a> {
    pub fn new(context: &'a HashMap<String, String>) -> Reader<'a> {
        Reader {
            context,
            problems: Vec::new(),
            #[cfg(test)]
            reading: None,
            #[cfg(test)]
            reads: Default::default(),
        }
    }

    /// Says which part's parser reads next.
    pub fn part(&mut self, part: Part) -> &mut Self {
        #[cfg(test)]
        {
            self.reading = Some(part);
        }
        let _ = part;
        self
    }

    /// The whole context, for the steps that look at every key.
    pub fn context(&self) -> &'a HashMap<String, String> {
        self.context
    }

    /// The value of `key`; `None` also for an empty value of a key whose empty value means
    /// "unset" (the table's `empty_is_unset`, Go's `setDefaultIfEmpty`).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        let value = self.present(key)?;
        let empty_is_unset = table::attribute(key).is_some_and(|row| row.empty_is_unset);
        (!(empty_is_unset && value.is_empty())).then_some(value)
    }

    /// The value of `key` exactly as sent: an empty value is still a value.
    pub fn present(&self, key: &str) -> Option<&'a str> {
        let row = table::attribute(key);
        debug_assert!(row.is_some(), "{key} is not in the attribute table");
        #[cfg(test)]
        if let Some(row) = row {
            self.reads.borrow_mut().push((self.reading, row.key));
        }
        self.context.get(key).map(String::as_str)
    }

    /// Records a problem with `key`.
    pub fn problem(&mut self, key: &str, value: Option<&str>, reason: impl Into<String>) {
        self.problems.push(AttributeProblem {
            key: key.to_string(),
            value: value.map(str::to_string),
            reason: reason.into(),
        });
    }

    /// A value with variables expanded; a bad variable is recorded as a problem.
    pub fn expanded(&mut self, key: &str, pod: &PodInfo) -> Option<String> {
        let raw = self.get(key)?;
        match expand(raw, pod) {
            Ok(value) => Some(value),
            Err(reason) => {
                self.problem(key, Some(raw), reason);
                None
            }
        }
    }

    /// A value that is used exactly as written, so it must not start or end with whitespace
    /// (the Go driver sends it verbatim, and the issuer is then never found); `default` when
    /// unset (or empty, for a key whose empty value means unset).
    pub fn verbatim(&mut self, key: &str, default: &str) -> String {
        match self.get(key) {
            None => default.to_string(),
            Some("") => {
                self.problem(key, Some(""), "must not be empty");
                default.to_string()
            }
            Some(value) if value.trim() != value => {
                self.problem(
                    key,
                    Some(value),
                    "must not start or end with whitespace: the issuer reference is sent to \
                     cert-manager as written, and no issuer would match it",
                );
                value.to_string()
            }
            Some(value) => value.to_string(),
        }
    }

    pub fn boolean(&mut self, key: &str) -> bool {
        match self.get(key) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                self.problem(key, Some(other), "must be \"true\" or \"false\"");
                false
            }
        }
    }

    /// A duration from 0 up, as Go's `time.ParseDuration` reads it (`-0s` is its zero too); a
    /// negative one is refused.
    pub fn duration(&mut self, key: &str) -> Option<Duration> {
        let raw = self.get(key)?;
        let unsigned = raw.strip_prefix('-').unwrap_or(raw);
        match parse_go_duration(unsigned) {
            Ok(value) if value.is_zero() || unsigned.len() == raw.len() => Some(value),
            Ok(_) => {
                self.problem(key, Some(raw), "must not be negative");
                None
            }
            Err(reason) => {
                self.problem(key, Some(raw), reason);
                None
            }
        }
    }

    pub fn file_name(&mut self, key: &str, default: &str) -> String {
        let name = self.get(key).unwrap_or(default);
        if let Err(reason) = check_file_name(name) {
            self.problem(key, Some(name), reason);
        }
        name.to_string()
    }
}

/// A decimal number as Go's `strconv.Atoi` / `ParseInt` reads it: an optional `+` or `-`, then
/// digits, nothing else (no spaces).
pub(super) fn parse_go_int(raw: &str) -> Result<i64, ()> {
    let digits = raw.strip_prefix(['+', '-']).unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    raw.strip_prefix('+').unwrap_or(raw).parse().map_err(|_| ())
}

/// Comma-separated list, entries trimmed, empty entries dropped.
pub(super) fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_string)
        .collect()
}

/// Comma-separated list, entries trimmed, as Go's `splitList`; an empty entry (`"a,"`, `"a,,b"`,
/// `" "`) is a problem, as it is for the Go driver. An empty value is an empty list.
pub(super) fn split_list_strict(reader: &mut Reader<'_>, key: &str, value: &str) -> Vec<String> {
    if value.is_empty() {
        return Vec::new();
    }
    let entries: Vec<String> = value.split(',').map(|e| e.trim().to_string()).collect();
    if entries.iter().any(String::is_empty) {
        reader.problem(
            key,
            Some(value),
            "has an empty entry (a stray comma or a blank value); remove it",
        );
    }
    entries.into_iter().filter(|e| !e.is_empty()).collect()
}
