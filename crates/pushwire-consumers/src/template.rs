//! Route-mode channel templates: `orders.{type}`, `user#{user_id}`, `{subject}`,
//! `events.{header.kind}`, `orders:{row.id}` (a dotted path into nested body objects),
//! `sensors:{topic.1}` (a level of an MQTT topic).

use serde_json::{Map, Value};

use crate::message::Message;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Copied as is.
    Literal(String),
    /// The message subject (topic, routing key, subject, stream name).
    Subject,
    /// A header value.
    Header(String),
    /// Level `N` (0-based) of the subject split at `/` (an MQTT topic): `{topic.1}`.
    TopicLevel(usize),
    /// A field of the JSON body: top-level, or a dotted path into nested objects.
    Field(String),
}

/// A parsed channel template. `{{` and `}}` stand for literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; the error says what is wrong (unclosed brace, empty placeholder, ...).
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '}' => return Err(format!("unmatched '}}' in template {text:?}")),
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some('{') | None => {
                                return Err(format!("unclosed '{{' in template {text:?}"))
                            }
                            Some(ch) => name.push(ch),
                        }
                    }
                    let name = name.trim();
                    if name.is_empty() {
                        return Err(format!("empty placeholder in template {text:?}"));
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut lit)));
                    }
                    parts.push(if name == "subject" {
                        Part::Subject
                    } else if let Some(h) = name.strip_prefix("header.") {
                        if h.is_empty() {
                            return Err(format!("empty header name in template {text:?}"));
                        }
                        Part::Header(h.to_owned())
                    } else if let Some(n) = name
                        .strip_prefix("topic.")
                        .and_then(|n| n.parse::<usize>().ok())
                    {
                        Part::TopicLevel(n)
                    } else {
                        Part::Field(name.to_owned())
                    });
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        if parts.is_empty() {
            return Err("empty template".into());
        }
        Ok(Template { parts })
    }

    /// Whether any placeholder reads the JSON body.
    pub fn needs_body(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Field(_)))
    }

    /// Renders the template for `msg`, with `body` its parsed JSON object when the template
    /// reads fields. Errors name the placeholder that has no (scalar, non-empty) value.
    pub fn render(
        &self,
        msg: &Message,
        body: Option<&Map<String, Value>>,
    ) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Subject => {
                    if msg.subject.is_empty() {
                        return Err("template placeholder {subject}: message has no subject".into());
                    }
                    out.push_str(&msg.subject)
                }
                Part::Header(h) => match msg.header(h) {
                    Some(v) if !v.is_empty() => out.push_str(v),
                    _ => {
                        return Err(format!(
                            "template placeholder {{header.{h}}}: no such header"
                        ))
                    }
                },
                Part::TopicLevel(n) => match msg.subject.split('/').nth(*n) {
                    Some(v) if !v.is_empty() => out.push_str(v),
                    _ => {
                        return Err(format!(
                            "template placeholder {{topic.{n}}}: topic {:?} has no level {n}",
                            msg.subject
                        ))
                    }
                },
                Part::Field(f) => match body.and_then(|b| lookup(b, f)).and_then(scalar) {
                    Some(v) if !v.is_empty() => out.push_str(&v),
                    _ => {
                        return Err(format!(
                            "template placeholder {{{f}}}: body has no string or number field {f:?}"
                        ))
                    }
                },
            }
        }
        Ok(out)
    }
}

/// The body field `path`: a top-level key, or (when there is none of that name) a dotted path
/// into nested objects, e.g. `row.id`.
pub(crate) fn lookup<'a>(body: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = body.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut v = body.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

/// A scalar JSON value as text: strings as they are, numbers and booleans printed.
pub(crate) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message {
            id: "x".into(),
            subject: "orders".into(),
            headers: vec![("Kind".into(), "created".into())],
            body: bytes::Bytes::new(),
        }
    }

    #[test]
    fn renders_subject_header_and_fields() {
        let t = Template::parse("{subject}.{header.kind}:{type}#{id}{{x}}").unwrap();
        let body: Value = serde_json::json!({"type": "paid", "id": 42});
        let out = t.render(&msg(), body.as_object()).unwrap();
        assert_eq!(out, "orders.created:paid#42{x}");
        assert!(t.needs_body());
    }

    #[test]
    fn missing_values_name_the_placeholder() {
        let t = Template::parse("orders.{type}").unwrap();
        let body: Value = serde_json::json!({"kind": "x"});
        let e = t.render(&msg(), body.as_object()).unwrap_err();
        assert!(e.contains("{type}"), "{e}");
        let body: Value = serde_json::json!({"type": {"nested": 1}});
        assert!(t.render(&msg(), body.as_object()).is_err());
        let t = Template::parse("{header.nope}").unwrap();
        assert!(t.render(&msg(), None).unwrap_err().contains("header.nope"));
    }

    #[test]
    fn dotted_fields_read_nested_objects() {
        let t = Template::parse("{table}:{row.id}.{row.meta.kind}").unwrap();
        let body: Value =
            serde_json::json!({"table": "orders", "row": {"id": 7, "meta": {"kind": "x"}}});
        assert_eq!(t.render(&msg(), body.as_object()).unwrap(), "orders:7.x");
        let body: Value = serde_json::json!({"table": "orders", "row": {"meta": {}}});
        let e = t.render(&msg(), body.as_object()).unwrap_err();
        assert!(e.contains("{row.id}"), "{e}");
        let mut m = msg();
        m.subject = "sensors/dev-3/temp".into();
        let t = Template::parse("sensors:{topic.1}.{topic.0}").unwrap();
        assert_eq!(t.render(&m, None).unwrap(), "sensors:dev-3.sensors");
        assert!(!t.needs_body());
        let t = Template::parse("x:{topic.5}").unwrap();
        assert!(t.render(&m, None).unwrap_err().contains("{topic.5}"));
        // A top-level key with a dot wins over the path.
        let t = Template::parse("{a.b}").unwrap();
        let body: Value = serde_json::json!({"a.b": "flat", "a": {"b": "nested"}});
        assert_eq!(t.render(&msg(), body.as_object()).unwrap(), "flat");
    }

    #[test]
    fn rejects_bad_templates() {
        for bad in ["", "a{b", "a}b", "{}", "{header.}", "a{b{c}}"] {
            assert!(Template::parse(bad).is_err(), "{bad:?}");
        }
        assert!(!Template::parse("static").unwrap().needs_body());
    }
}
