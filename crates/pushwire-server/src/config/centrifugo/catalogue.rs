//! The catalogue of Centrifugo v6 keys (`keys.txt`): what pushwire does with each one.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// The data file, one key a line (its header explains the columns and where it came from).
pub const KEYS_TXT: &str = include_str!("keys.txt");

/// What pushwire does with a Centrifugo key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Implemented with Centrifugo's meaning: kept as it is.
    Same,
    /// Accepted and moved to another key (a sibling name, or a full path when it has a dot).
    Map(&'static str),
    /// Accepted and translated by a function of `special.rs`.
    Fn(&'static str),
    /// Accepted: pushwire always behaves as the key asks; dropped.
    Covered,
    /// Not supported and harmless: dropped, with one warning when not at its default.
    Ignore,
    /// Not supported, ignoring it would weaken security or change delivery: start-up error
    /// when not at its default.
    Refuse,
}

/// One catalogue line.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Key pattern, `[]` standing for every element of a list (`channel.namespaces[].presence`).
    pub key: &'static str,
    /// Go type in Centrifugo (`int`, `bool`, `Duration`, `[]string`, `MapStringString`, …).
    pub go_type: &'static str,
    /// Centrifugo's default, as written in its `default` tag (empty: the type's zero value).
    pub default: &'static str,
    /// What pushwire does with it.
    pub class: Class,
    /// Why, or where it goes.
    pub note: &'static str,
}

impl Entry {
    /// Whether the key holds a list of objects that the walker descends into.
    pub fn is_object_list(&self) -> bool {
        self.go_type.starts_with("[]")
            && self.go_type[2..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_uppercase())
            && self.go_type != "[]byte"
    }

    /// Whether this key is implemented on another branch and not yet accepted here.
    pub fn pending(&self) -> bool {
        self.note.starts_with("pending merge")
    }
}

/// The parsed catalogue.
#[derive(Debug)]
pub struct Catalogue {
    entries: Vec<Entry>,
    by_key: HashMap<&'static str, usize>,
    prefixes: HashSet<String>,
}

impl Catalogue {
    /// The catalogue of `keys.txt`.
    pub fn get() -> &'static Catalogue {
        static CATALOGUE: LazyLock<Catalogue> = LazyLock::new(|| Catalogue::parse(KEYS_TXT));
        &CATALOGUE
    }

    fn parse(text: &'static str) -> Catalogue {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let mut cols = line.split('\t');
            let mut col = || cols.next().unwrap_or("");
            let (key, go_type, default, class, note) = (col(), col(), col(), col(), col());
            let class = match class.split_once(':') {
                None if class == "same" => Class::Same,
                None if class == "covered" => Class::Covered,
                None if class == "ignore" => Class::Ignore,
                None if class == "refuse" => Class::Refuse,
                Some(("map", to)) => Class::Map(to),
                Some(("fn", f)) => Class::Fn(f),
                _ => panic!("keys.txt line {}: bad class {class:?}", n + 1),
            };
            entries.push(Entry {
                key,
                go_type,
                default,
                class,
                note,
            });
        }
        let by_key = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.key, i))
            .collect();
        let mut prefixes = HashSet::new();
        for e in &entries {
            let mut p = e.key;
            while let Some((head, _)) = p.rsplit_once('.') {
                prefixes.insert(head.to_string());
                p = head;
            }
        }
        Catalogue {
            entries,
            by_key,
            prefixes,
        }
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry of a key pattern.
    pub fn lookup(&self, pattern: &str) -> Option<&Entry> {
        self.by_key.get(pattern).map(|&i| &self.entries[i])
    }

    /// Whether some Centrifugo key lies below this pattern (`client.token` → yes).
    pub fn is_section(&self, pattern: &str) -> bool {
        self.prefixes.contains(pattern)
    }

    /// The known key closest to `pattern` in spelling, for "did you mean" hints.
    pub fn closest(&self, pattern: &str) -> Option<&'static str> {
        let (parent, leaf) = pattern.rsplit_once('.').unwrap_or(("", pattern));
        self.entries
            .iter()
            .filter(|e| e.key.rsplit_once('.').map_or("", |(p, _)| p) == parent)
            .map(|e| {
                (
                    distance(leaf, e.key.rsplit('.').next().unwrap_or(e.key)),
                    e.key,
                )
            })
            .filter(|(d, _)| *d <= 3.max(leaf.len() / 2))
            .min_by_key(|(d, _)| *d)
            .map(|(_, k)| k)
    }
}

/// Levenshtein distance between two names.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_line() {
        let c = Catalogue::get();
        assert!(c.entries().len() > 1000, "{}", c.entries().len());
        let e = c.lookup("client.token.hmac_secret_key").unwrap();
        assert_eq!(e.class, Class::Same);
        assert_eq!(
            c.lookup("prometheus.enabled").unwrap().class,
            Class::Covered
        );
        assert!(c.lookup("channel.namespaces").unwrap().is_object_list());
        assert!(!c.lookup("client.allowed_origins").unwrap().is_object_list());
        assert!(c.is_section("client.token"));
        assert!(!c.is_section("client.token.hmac_secret_key"));
    }

    #[test]
    fn suggests_the_closest_key() {
        let c = Catalogue::get();
        assert_eq!(
            c.closest("client.allowed_origin"),
            Some("client.allowed_origins")
        );
        assert_eq!(
            c.closest("client.token.hmac_secret"),
            Some("client.token.hmac_secret_key")
        );
        assert_eq!(c.closest("client.zzzzzzzzzzzzzzzzzz"), None);
    }
}
