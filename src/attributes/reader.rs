//! Reading one volume context: values by key (or by an old spelling), the common value shapes
//! (booleans, durations, file names, lists), and every problem collected rather than returned,
//! so one answer lists all that is wrong.

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

    /// The value of `key`, or of its old spelling when only that is set.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        let row = table::attribute(key);
        debug_assert!(row.is_some(), "{key} is not in the attribute table");
        #[cfg(test)]
        if let Some(row) = row {
            self.reads.borrow_mut().push((self.reading, row.key));
        }
        self.context.get(key).map(String::as_str).or_else(|| {
            row.into_iter()
                .flat_map(|row| row.aliases)
                .find_map(|alias| self.context.get(*alias).map(String::as_str))
        })
    }

    /// The key as the user wrote it: an old spelling when only that is set.
    fn spelled(&self, key: &str) -> String {
        if self.context.contains_key(key) {
            return key.to_string();
        }
        table::attribute(key)
            .into_iter()
            .flat_map(|row| row.aliases)
            .find(|alias| self.context.contains_key(**alias))
            .map_or_else(|| key.to_string(), |alias| alias.to_string())
    }

    /// Records a problem with `key`, named as the user spelled it.
    pub fn problem(&mut self, key: &str, value: Option<&str>, reason: impl Into<String>) {
        let key = self.spelled(key);
        self.problems.push(AttributeProblem {
            key,
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

    /// A trimmed value that must not be blank when set; `default` when unset.
    pub fn non_empty(&mut self, key: &str, default: &str) -> String {
        match self.get(key) {
            None => default.to_string(),
            Some(value) if !value.trim().is_empty() => value.trim().to_string(),
            Some(value) => {
                self.problem(key, Some(value), "must not be empty");
                default.to_string()
            }
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

    pub fn duration(&mut self, key: &str) -> Option<Duration> {
        let raw = self.get(key)?;
        match parse_go_duration(raw) {
            // Certificates carry whole seconds; anything shorter would be born expired and
            // renewed in a tight loop.
            Ok(value) if value < Duration::from_secs(1) => {
                self.problem(key, Some(raw), "must be at least 1s");
                None
            }
            Ok(value) => Some(value),
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

/// A plain decimal number (no sign, no spaces inside), as Kubernetes users write it.
pub(super) fn parse_decimal(raw: &str) -> Result<u32, ()> {
    let digits = raw.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    digits.parse().map_err(|_| ())
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
