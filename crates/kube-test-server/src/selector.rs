//! Label and field selectors, as sent in `?labelSelector=` and `?fieldSelector=`.
//!
//! This exists because list and watch requests filter on them and the driver's watcher relies on
//! label selectors to see only its own CertificateRequests; the grammar follows the Kubernetes
//! API server's (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, `k>1`, `k<1`,
//! comma-separated requirements that must all hold).

use serde_json::Value;
use std::fmt;

/// A selector did not parse; the message says where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError(pub String);

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SelectorError {}

/// One operator of a label requirement and the values it compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelOp {
    /// `k=v` or `k==v`.
    Equals(String),
    /// `k!=v` (also true when the label is absent).
    NotEquals(String),
    /// `k in (a,b)`.
    In(Vec<String>),
    /// `k notin (a,b)` (also true when the label is absent).
    NotIn(Vec<String>),
    /// `k`.
    Exists,
    /// `!k`.
    DoesNotExist,
    /// `k>n`: the label is an integer greater than n.
    GreaterThan(i64),
    /// `k<n`: the label is an integer less than n.
    LessThan(i64),
}

/// One `key op values` term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRequirement {
    pub key: String,
    pub op: LabelOp,
}

impl LabelRequirement {
    fn matches(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (LabelOp::Equals(want), Some(v)) => v == want,
            (LabelOp::NotEquals(want), v) => v != Some(want.as_str()),
            (LabelOp::In(set), Some(v)) => set.iter().any(|s| s == v),
            (LabelOp::NotIn(set), v) => v.is_none_or(|v| !set.iter().any(|s| s == v)),
            (LabelOp::Exists, v) => v.is_some(),
            (LabelOp::DoesNotExist, v) => v.is_none(),
            (LabelOp::GreaterThan(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v > *n),
            (LabelOp::LessThan(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v < *n),
            (LabelOp::Equals(_) | LabelOp::In(_), None) => false,
            (LabelOp::GreaterThan(_) | LabelOp::LessThan(_), None) => false,
        }
    }
}

/// A parsed label selector: every requirement must hold. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter (already URL-decoded).
    pub fn parse(input: &str) -> Result<LabelSelector, SelectorError> {
        LabelParser { input, pos: 0 }.selector()
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches_object(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        self.requirements.iter().all(|r| {
            let value = labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str);
            r.matches(value)
        })
    }
}

/// A recursive-descent parser over the selector text; tokens may be separated by spaces.
struct LabelParser<'a> {
    input: &'a str,
    pos: usize,
}

impl LabelParser<'_> {
    fn selector(mut self) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        self.skip_spaces();
        if self.peek().is_none() {
            return Ok(LabelSelector { requirements });
        }
        loop {
            requirements.push(self.requirement()?);
            self.skip_spaces();
            match self.peek() {
                None => return Ok(LabelSelector { requirements }),
                Some(',') => self.pos += 1,
                Some(c) => return Err(self.error(&format!("expected ',' but found '{c}'"))),
            }
        }
    }

    fn requirement(&mut self) -> Result<LabelRequirement, SelectorError> {
        self.skip_spaces();
        if self.eat("!") {
            self.skip_spaces();
            let key = self.key()?;
            return Ok(LabelRequirement {
                key,
                op: LabelOp::DoesNotExist,
            });
        }
        let key = self.key()?;
        self.skip_spaces();
        let op = match self.peek() {
            None | Some(',') => LabelOp::Exists,
            Some('=') => {
                self.pos += 1;
                self.eat("=");
                LabelOp::Equals(self.value()?)
            }
            Some('!') => {
                if !self.eat("!=") {
                    return Err(self.error("expected '!='"));
                }
                LabelOp::NotEquals(self.value()?)
            }
            Some('>') => {
                self.pos += 1;
                LabelOp::GreaterThan(self.integer()?)
            }
            Some('<') => {
                self.pos += 1;
                LabelOp::LessThan(self.integer()?)
            }
            Some(_) => match self.word().as_str() {
                "in" => LabelOp::In(self.value_set()?),
                "notin" => LabelOp::NotIn(self.value_set()?),
                "" => return Err(self.error("expected an operator")),
                other => return Err(self.error(&format!("unknown operator '{other}'"))),
            },
        };
        Ok(LabelRequirement { key, op })
    }

    /// A label key: optional DNS prefix and '/', then a name.
    fn key(&mut self) -> Result<String, SelectorError> {
        let key =
            self.take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
        if key.is_empty() {
            return Err(self.error("expected a label key"));
        }
        Ok(key)
    }

    /// A label value; may be empty (`k=` selects an empty value). Checked as the API server
    /// checks label values: at most 63 characters, and alphanumeric at both ends.
    fn value(&mut self) -> Result<String, SelectorError> {
        self.skip_spaces();
        let value = self.take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        let alphanumeric_ends = value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric());
        if value.len() > 63 || !(value.is_empty() || alphanumeric_ends) {
            return Err(self.error(&format!(
                "invalid label value {value:?}: at most 63 characters, beginning and ending \
                 with an alphanumeric character"
            )));
        }
        Ok(value)
    }

    fn integer(&mut self) -> Result<i64, SelectorError> {
        self.skip_spaces();
        let text = self.take_while(|c| c.is_ascii_digit() || c == '-');
        text.parse()
            .map_err(|_| self.error(&format!("expected an integer, found '{text}'")))
    }

    /// `( v1, v2, ... )`. As on the API server, any value may be empty, and so may the whole
    /// set: `k in ()` is `k in ("")`, selecting an empty value.
    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        self.skip_spaces();
        if !self.eat("(") {
            return Err(self.error("expected '('"));
        }
        let mut values = Vec::new();
        loop {
            values.push(self.value()?);
            self.skip_spaces();
            if self.eat(")") {
                break;
            }
            if !self.eat(",") {
                return Err(self.error("expected ',' or ')' in a value set"));
            }
        }
        Ok(values)
    }

    fn word(&mut self) -> String {
        self.take_while(|c| c.is_ascii_alphabetic())
    }

    fn take_while(&mut self, accept: impl Fn(char) -> bool) -> String {
        let rest = &self.input[self.pos..];
        let len = rest.find(|c| !accept(c)).unwrap_or(rest.len());
        self.pos += len;
        rest[..len].to_string()
    }

    /// Whitespace as the API server's lexer knows it.
    fn skip_spaces(&mut self) {
        self.take_while(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    }

    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn eat(&mut self, token: &str) -> bool {
        let found = self.input[self.pos..].starts_with(token);
        if found {
            self.pos += token.len();
        }
        found
    }

    fn error(&self, what: &str) -> SelectorError {
        SelectorError(format!(
            "unable to parse requirement: {what} at position {} in {:?}",
            self.pos, self.input
        ))
    }
}

/// A parsed field selector: `path=value`, `path==value` or `path!=value` terms, all of which must
/// hold. Paths are dotted JSON paths such as `metadata.name` or `spec.nodeName`; a missing field
/// compares as the empty string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// (path, expected value, whether equality is wanted)
    pub terms: Vec<(String, String, bool)>,
}

impl FieldSelector {
    /// Parses the `fieldSelector` query parameter (already URL-decoded).
    pub fn parse(input: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = Vec::new();
        for term in input.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, value, equal) = if let Some((p, v)) = term.split_once("!=") {
                (p, v, false)
            } else if let Some((p, v)) = term.split_once("==") {
                (p, v, true)
            } else if let Some((p, v)) = term.split_once('=') {
                (p, v, true)
            } else {
                return Err(SelectorError(format!(
                    "invalid field selector term {term:?}: expected path=value or path!=value"
                )));
            };
            terms.push((path.trim().to_string(), value.trim().to_string(), equal));
        }
        Ok(FieldSelector { terms })
    }

    /// Whether the object's fields satisfy every term.
    pub fn matches_object(&self, object: &Value) -> bool {
        self.terms.iter().all(|(path, want, equal)| {
            let field = path.split('.').try_fold(object, |v, key| v.get(key));
            let actual = match field {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            (actual == *want) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(key: &str, op: LabelOp) -> LabelRequirement {
        LabelRequirement {
            key: key.to_string(),
            op,
        }
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_every_operator() {
        let parsed =
            LabelSelector::parse("a=1, b==2,c!=3,d,!e, f in (x, y),g notin(z),example.com/h>5,i<7")
                .unwrap();
        assert_eq!(
            parsed.requirements,
            vec![
                req("a", LabelOp::Equals("1".into())),
                req("b", LabelOp::Equals("2".into())),
                req("c", LabelOp::NotEquals("3".into())),
                req("d", LabelOp::Exists),
                req("e", LabelOp::DoesNotExist),
                req("f", LabelOp::In(strings(&["x", "y"]))),
                req("g", LabelOp::NotIn(strings(&["z"]))),
                req("example.com/h", LabelOp::GreaterThan(5)),
                req("i", LabelOp::LessThan(7)),
            ]
        );
    }

    #[test]
    fn empty_selector_matches_everything() {
        let parsed = LabelSelector::parse("  ").unwrap();
        assert!(parsed.requirements.is_empty());
        assert!(parsed.matches_object(&json!({"metadata": {}})));
    }

    #[test]
    fn empty_value_is_allowed_for_equality() {
        let parsed = LabelSelector::parse("a=").unwrap();
        assert_eq!(
            parsed.requirements,
            vec![req("a", LabelOp::Equals(String::new()))]
        );
        assert!(parsed.matches_object(&json!({"metadata": {"labels": {"a": ""}}})));
        assert!(!parsed.matches_object(&json!({"metadata": {}})));
    }

    #[test]
    fn rejects_malformed_selectors() {
        for bad in [
            "a in b",
            "a in (b",
            "a in (b c)",
            "a in (b)c",
            "a in (-b)",
            "a in (b.)",
            "a=b/c",
            "a ~ b",
            "a=b c=d",
            "=b",
            "a!b",
            ",",
            "a,",
            "a>x",
            "a between (1,2)",
        ] {
            assert!(
                LabelSelector::parse(bad).is_err(),
                "{bad:?} should not parse"
            );
        }
    }

    #[test]
    fn set_based_selectors_parse_as_the_api_server_parses_them() {
        let parsed = LabelSelector::parse(
            "csi.cert-manager.io/node-id-hash in (9bd6bbf5f,35971be6e9bb024a)",
        )
        .unwrap();
        assert_eq!(
            parsed.requirements,
            vec![req(
                "csi.cert-manager.io/node-id-hash",
                LabelOp::In(strings(&["9bd6bbf5f", "35971be6e9bb024a"]))
            )]
        );
        // Tabs and newlines separate tokens too; `in` needs no space before its set.
        assert_eq!(
            LabelSelector::parse("a\tin(\nx ,\r\ny\t)").unwrap(),
            LabelSelector::parse("a in (x,y)").unwrap()
        );
        // Empty values are values: `()` is the set of the empty value.
        for (selector, values) in [
            ("a in ()", vec![""]),
            ("a in (,x)", vec!["", "x"]),
            ("a in (x,)", vec!["x", ""]),
            ("a notin ()", vec![""]),
        ] {
            let op = &LabelSelector::parse(selector).unwrap().requirements[0].op;
            match op {
                LabelOp::In(set) | LabelOp::NotIn(set) => {
                    assert_eq!(set, &strings(&values), "{selector}")
                }
                other => panic!("{selector} parsed as {other:?}"),
            }
        }
        assert!(LabelSelector::parse(&format!("a in (x,{})", "v".repeat(63))).is_ok());
        assert!(LabelSelector::parse(&format!("a in (x,{})", "v".repeat(64))).is_err());
    }

    #[test]
    fn a_set_selects_any_of_its_values() {
        let selector = LabelSelector::parse("hash in (new,old)").unwrap();
        let labelled = |value: &str| json!({"metadata": {"labels": {"hash": value}}});
        assert!(selector.matches_object(&labelled("new")));
        assert!(selector.matches_object(&labelled("old")));
        assert!(!selector.matches_object(&labelled("other")));
        assert!(!selector.matches_object(&labelled("")));
        assert!(!selector.matches_object(&json!({"metadata": {}})));
        let empty = LabelSelector::parse("hash in ()").unwrap();
        assert!(empty.matches_object(&labelled("")));
        assert!(!empty.matches_object(&labelled("new")));
        assert!(!empty.matches_object(&json!({"metadata": {}})));
    }

    #[test]
    fn matching_follows_kubernetes_semantics() {
        let object = json!({"metadata": {"labels": {"app": "web", "tier": "front", "n": "10"}}});
        let cases = [
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app in (db,web)", true),
            ("app in (db)", false),
            ("missing in (db)", false),
            ("app notin (db)", true),
            ("app notin (web)", false),
            ("missing notin (web)", true),
            ("n>9", true),
            ("n>10", false),
            ("n<11", true),
            ("app>1", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
        ];
        for (selector, expected) in cases {
            let parsed = LabelSelector::parse(selector).unwrap();
            assert_eq!(parsed.matches_object(&object), expected, "{selector}");
        }
        let unlabelled = json!({"metadata": {"name": "x"}});
        assert!(
            LabelSelector::parse("!app")
                .unwrap()
                .matches_object(&unlabelled)
        );
        assert!(
            !LabelSelector::parse("app")
                .unwrap()
                .matches_object(&unlabelled)
        );
    }

    #[test]
    fn field_selectors() {
        let object = json!({"metadata": {"name": "a", "namespace": "ns"}, "spec": {"replicas": 2}});
        let yes = [
            "metadata.name=a",
            "metadata.name==a,metadata.namespace=ns",
            "metadata.name!=b",
            "spec.replicas=2",
            "spec.missing=",
        ];
        for s in yes {
            assert!(
                FieldSelector::parse(s).unwrap().matches_object(&object),
                "{s}"
            );
        }
        let no = [
            "metadata.name=b",
            "metadata.name!=a",
            "metadata.name=a,metadata.namespace=other",
        ];
        for s in no {
            assert!(
                !FieldSelector::parse(s).unwrap().matches_object(&object),
                "{s}"
            );
        }
        assert!(FieldSelector::parse("metadata.name").is_err());
        assert!(FieldSelector::parse("").unwrap().terms.is_empty());
    }
}
