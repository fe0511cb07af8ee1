//! Channel name patterns for `channels`: a small glob matcher, no regex.
//!
//! `*` matches any run of characters (also empty and across `:`), `?` exactly one character,
//! and `\` makes the next character literal. Every other character, including `[`, `]`, `{`
//! and `}`, matches itself. An empty pattern matches everything.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Star,
    One,
    Char(char),
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
}

impl Glob {
    /// Compiles `pattern`. A trailing lone `\` matches a literal backslash.
    pub fn new(pattern: &str) -> Glob {
        let mut tokens = Vec::with_capacity(pattern.len());
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' if tokens.last() == Some(&Token::Star) => continue,
                '*' => Token::Star,
                '?' => Token::One,
                '\\' => Token::Char(chars.next().unwrap_or('\\')),
                c => Token::Char(c),
            };
            tokens.push(token);
        }
        Glob { tokens }
    }

    /// Whether the pattern matches everything.
    pub fn matches_all(&self) -> bool {
        self.tokens.is_empty() || self.tokens == [Token::Star]
    }

    /// Whether `text` matches the whole pattern (an empty pattern matches everything).
    pub fn matches(&self, text: &str) -> bool {
        if self.tokens.is_empty() {
            return true;
        }
        let text: Vec<char> = text.chars().collect();
        let (mut p, mut t) = (0, 0);
        // Where to resume after the last `*`: pattern index after it, text index it reached.
        let mut resume: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.tokens.get(p) {
                Some(Token::Star) => {
                    resume = Some((p + 1, t));
                    p += 1;
                }
                Some(Token::One) => {
                    p += 1;
                    t += 1;
                }
                Some(Token::Char(c)) if *c == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match resume {
                    Some((after_star, from)) => {
                        p = after_star;
                        t = from + 1;
                        resume = Some((after_star, from + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|tok| *tok == Token::Star)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).matches(text)
    }

    #[test]
    fn literals_and_wildcards() {
        assert!(m("", "anything"));
        assert!(m("*", ""));
        assert!(m("*", "chat:x"));
        assert!(m("chat:x", "chat:x"));
        assert!(!m("chat:x", "chat:xy"));
        assert!(!m("chat:x", "chat:"));
        assert!(m("chat:*", "chat:"));
        assert!(m("chat:*", "chat:room:1"));
        assert!(!m("chat:*", "news"));
        assert!(m("*:1", "chat:room:1"));
        assert!(m("c?at:*", "chat:a"));
        assert!(!m("c?at:*", "cat:a"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c*", "xxaxxcxxbxx"));
        assert!(m("a**b", "ab"));
        assert!(m("??", "éa"));
        assert!(!m("?", ""));
    }

    #[test]
    fn regex_and_glob_metacharacters_are_literal() {
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "axb"));
        assert!(m("[ab]", "[ab]"));
        assert!(!m("[ab]", "a"));
        assert!(m("(x|y)+$", "(x|y)+$"));
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axxb"));
        assert!(m(r"a\?", "a?"));
        assert!(!m(r"a\?", "ab"));
        assert!(m("a\\", "a\\"));
    }

    #[test]
    fn matches_all() {
        assert!(Glob::new("").matches_all());
        assert!(Glob::new("**").matches_all());
        assert!(!Glob::new("a*").matches_all());
    }
}
