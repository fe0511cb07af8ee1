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
    ///
    /// Linear in the text: the pattern is split at its stars into segments; the first and the
    /// last are anchored, the ones between are found leftmost with a bit-parallel (shift-and)
    /// scan that never moves backwards, so no input makes the matcher backtrack.
    pub fn matches(&self, text: &str) -> bool {
        if self.tokens.is_empty() {
            return true;
        }
        let text: Vec<char> = text.chars().collect();
        let segments: Vec<&[Token]> = self.tokens.split(|t| *t == Token::Star).collect();
        if segments.len() == 1 {
            return segment_at(segments[0], &text, 0) && segments[0].len() == text.len();
        }
        // `a*b*c`: segments ["a", "b", "c"]; a leading/trailing star gives an empty one.
        let (first, rest) = segments.split_first().expect("at least two segments");
        let (last, middle) = rest.split_last().expect("at least two segments");
        if first.len() + last.len() > text.len() || !segment_at(first, &text, 0) {
            return false;
        }
        let end = text.len() - last.len();
        if !segment_at(last, &text, end) {
            return false;
        }
        let mut pos = first.len();
        for segment in middle {
            match find(segment, &text[..end], pos) {
                Some(after) => pos = after,
                None => return false,
            }
        }
        true
    }
}

/// Whether `segment` (no stars) matches `text` at `at`.
fn segment_at(segment: &[Token], text: &[char], at: usize) -> bool {
    text.len() >= at + segment.len()
        && segment.iter().zip(&text[at..]).all(|(t, c)| match t {
            Token::One => true,
            Token::Char(x) => x == c,
            Token::Star => false,
        })
}

/// The end of the leftmost match of `segment` (no stars) in `text` at or after `from`.
fn find(segment: &[Token], text: &[char], from: usize) -> Option<usize> {
    if segment.is_empty() {
        return Some(from);
    }
    if segment.len() > 128 {
        // Too long for one 128-bit state: a plain scan (still bounded by the text length
        // times this segment's length).
        return (from..=text.len().saturating_sub(segment.len()))
            .find(|&at| segment_at(segment, text, at))
            .map(|at| at + segment.len());
    }
    // Shift-and: bit i of `state` is set when the segment's first i+1 tokens match the text
    // ending at the current character.
    let wild: u128 = segment
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == Token::One)
        .fold(0, |m, (i, _)| m | 1 << i);
    let mut masks: std::collections::HashMap<char, u128> = std::collections::HashMap::new();
    for (j, t) in segment.iter().enumerate() {
        if let Token::Char(x) = t {
            *masks.entry(*x).or_insert(wild) |= 1 << j;
        }
    }
    let done = 1u128 << (segment.len() - 1);
    let mut state: u128 = 0;
    for (i, c) in text.iter().enumerate().skip(from) {
        let mask = masks.get(c).copied().unwrap_or(wild);
        state = ((state << 1) | 1) & mask;
        if state & done != 0 {
            return Some(i + 1);
        }
    }
    None
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

    /// The straightforward recursive definition, for comparison.
    fn reference(p: &[Token], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((Token::Star, rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
            Some((Token::One, rest)) => !t.is_empty() && reference(rest, &t[1..]),
            Some((Token::Char(c), rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
        }
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_the_reference(pattern in "[ab*?]{1,8}", text in "[ab]{0,10}") {
            let g = Glob::new(&pattern);
            let t: Vec<char> = text.chars().collect();
            proptest::prop_assert_eq!(g.matches(&text), reference(&g.tokens, &t));
        }
    }

    #[test]
    fn a_pattern_that_made_backtracking_matchers_crawl_is_answered() {
        let pattern = format!("*{}b", "a".repeat(120));
        let text = "a".repeat(2000);
        assert!(!m(&pattern, &text));
        assert!(m(&pattern, &format!("{text}b")));
        let long = format!("*{}*", "?".repeat(200));
        assert!(m(&long, &"x".repeat(200)));
        assert!(!m(&long, &"x".repeat(199)));
    }

    #[test]
    fn matches_all() {
        assert!(Glob::new("").matches_all());
        assert!(Glob::new("**").matches_all());
        assert!(!Glob::new("a*").matches_all());
    }
}
