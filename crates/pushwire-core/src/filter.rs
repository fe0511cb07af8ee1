//! Tags filters (`tf` in subscribe): which publications a subscriber receives, by event type.
//!
//! A leaf (`op == ""`) compares one tag: `eq`, `neq`, `in`, `nin`, `ex` (exists), `nex`,
//! `sw` (starts with), `ew` (ends with), `ct` (contains), and numeric `lt`, `lte`, `gt`, `gte`.
//! `and`/`or` combine their `nodes`; `not` negates its single node. A missing tag matches only
//! `neq`, `nin` and `nex`.

use std::collections::BTreeMap;

use pushwire_protocol::{ErrorCode, FilterNode};

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 8;
/// Most nodes accepted in one filter.
pub const MAX_NODES: usize = 64;

/// Checks a filter's shape: known operators, arity, depth and size (107 otherwise).
pub fn validate(node: &FilterNode) -> Result<(), ErrorCode> {
    let mut count = 0;
    validate_inner(node, 0, &mut count)
}

fn validate_inner(node: &FilterNode, depth: usize, count: &mut usize) -> Result<(), ErrorCode> {
    *count += 1;
    if depth > MAX_DEPTH || *count > MAX_NODES {
        return Err(ErrorCode::BadRequest);
    }
    match node.op.as_str() {
        "" => {
            if node.key.is_empty() || !node.nodes.is_empty() {
                return Err(ErrorCode::BadRequest);
            }
            match node.cmp.as_str() {
                "eq" | "neq" | "sw" | "ew" | "ct" | "ex" | "nex" => Ok(()),
                "in" | "nin" if !node.vals.is_empty() => Ok(()),
                "lt" | "lte" | "gt" | "gte" if node.val.parse::<f64>().is_ok() => Ok(()),
                _ => Err(ErrorCode::BadRequest),
            }
        }
        "and" | "or" if !node.nodes.is_empty() => node
            .nodes
            .iter()
            .try_for_each(|n| validate_inner(n, depth + 1, count)),
        "not" if node.nodes.len() == 1 => validate_inner(&node.nodes[0], depth + 1, count),
        _ => Err(ErrorCode::BadRequest),
    }
}

/// Whether a publication with `tags` passes the (validated) filter.
pub fn matches(node: &FilterNode, tags: &BTreeMap<String, String>) -> bool {
    match node.op.as_str() {
        "and" => node.nodes.iter().all(|n| matches(n, tags)),
        "or" => node.nodes.iter().any(|n| matches(n, tags)),
        "not" => !node.nodes.first().is_some_and(|n| matches(n, tags)),
        _ => leaf(node, tags.get(&node.key).map(String::as_str)),
    }
}

fn leaf(node: &FilterNode, value: Option<&str>) -> bool {
    let num = |v: &str| v.parse::<f64>().ok().zip(node.val.parse::<f64>().ok());
    match (node.cmp.as_str(), value) {
        ("ex", v) => v.is_some(),
        ("nex", v) => v.is_none(),
        ("neq", v) => v != Some(node.val.as_str()),
        ("nin", v) => !v.is_some_and(|v| node.vals.iter().any(|x| x == v)),
        (_, None) => false,
        ("eq", Some(v)) => v == node.val,
        ("in", Some(v)) => node.vals.iter().any(|x| x == v),
        ("sw", Some(v)) => v.starts_with(&node.val),
        ("ew", Some(v)) => v.ends_with(&node.val),
        ("ct", Some(v)) => v.contains(&node.val),
        ("lt", Some(v)) => num(v).is_some_and(|(a, b)| a < b),
        ("lte", Some(v)) => num(v).is_some_and(|(a, b)| a <= b),
        ("gt", Some(v)) => num(v).is_some_and(|(a, b)| a > b),
        ("gte", Some(v)) => num(v).is_some_and(|(a, b)| a >= b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(key: &str, cmp: &str, val: &str) -> FilterNode {
        FilterNode {
            key: key.into(),
            cmp: cmp.into(),
            val: val.into(),
            ..Default::default()
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn leaves_and_combinators() {
        let alert = tags(&[("type", "alert"), ("level", "3")]);
        assert!(matches(&leaf("type", "eq", "alert"), &alert));
        assert!(!matches(&leaf("type", "eq", "state_change"), &alert));
        assert!(matches(&leaf("level", "gte", "3"), &alert));
        assert!(!matches(&leaf("level", "gt", "3"), &alert));
        assert!(matches(&leaf("missing", "nex", ""), &alert));
        assert!(!matches(&leaf("missing", "eq", ""), &alert));
        let and = FilterNode {
            op: "and".into(),
            nodes: vec![leaf("type", "eq", "alert"), leaf("level", "lt", "5")],
            ..Default::default()
        };
        assert!(matches(&and, &alert));
        let not = FilterNode {
            op: "not".into(),
            nodes: vec![and],
            ..Default::default()
        };
        assert!(!matches(&not, &alert));
        validate(&not).unwrap();
    }

    #[test]
    fn rejects_bad_shapes() {
        assert!(validate(&leaf("t", "regex", "x")).is_err());
        assert!(validate(&leaf("", "eq", "x")).is_err());
        assert!(validate(&leaf("t", "lt", "abc")).is_err());
        let not = FilterNode {
            op: "not".into(),
            ..Default::default()
        };
        assert!(validate(&not).is_err());
    }
}
