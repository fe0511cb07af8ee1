//! NATS subject names, all under one prefix:
//!
//! | subject | carries |
//! |---|---|
//! | `<prefix>.client.<channel>` | the channel's publications, joins and leaves ([`crate::codec`]) |
//! | `<prefix>.control` | control messages to every node |
//! | `<prefix>.node.<uid>` | control messages to the node with that uid |
//!
//! A channel becomes subject tokens as it is (`.` separates tokens), so a channel that is
//! not a valid subject (whitespace, `*`, `>`, an empty token) is refused by the broker.

/// Builds subjects for one prefix.
#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: String,
}

/// Whether `s` is a non-empty subject of literal tokens.
pub fn valid_token_path(s: &str) -> bool {
    !s.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c == '*' || c == '>')
        && s.split('.').all(|t| !t.is_empty())
}

impl Subjects {
    /// Subjects under `prefix` (validated).
    pub fn new(prefix: &str) -> Subjects {
        Subjects {
            prefix: prefix.to_owned(),
        }
    }

    /// The subject of `channel`, or `None` if the channel can not be a subject.
    pub fn channel(&self, channel: &str) -> Option<String> {
        valid_token_path(channel).then(|| format!("{}.client.{channel}", self.prefix))
    }

    /// Control messages to every node.
    pub fn control(&self) -> String {
        format!("{}.control", self.prefix)
    }

    /// Control messages to node `uid`.
    pub fn node(&self, uid: &str) -> String {
        format!("{}.node.{uid}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_map_to_literal_subjects_only() {
        let s = Subjects::new("pw");
        assert_eq!(s.channel("chat:1").as_deref(), Some("pw.client.chat:1"));
        assert_eq!(s.channel("a.b").as_deref(), Some("pw.client.a.b"));
        for bad in ["", "a b", "a.*", "a.>", "a..b", ".a", "a."] {
            assert_eq!(s.channel(bad), None, "{bad:?}");
        }
    }
}
