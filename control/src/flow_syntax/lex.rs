//! Splitting flow text into tokens, as `ovs-ofctl` does.
//!
//! Tokens are separated by runs of `,`, space, tab, CR or LF, so
//! `in_port=1, ip actions=drop` and `in_port=1,ip,actions=drop` are the same
//! flow (dump-flows output separates its parts with `", "` and `" "`). A
//! parenthesised group such as `learn(a,b)` stays one token. All delimiters
//! are ASCII, so byte scanning never splits a UTF-8 character and every
//! offset handed out is a `char` boundary.

/// One token and its byte offset in the whole input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tok<'a> {
    pub off: usize,
    pub text: &'a str,
}

impl<'a> Tok<'a> {
    /// Splits `key=value` at the first `=`; `value` is `None` without `=`.
    pub fn key_value(&self) -> (&'a str, Option<&'a str>) {
        match self.text.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (self.text, None),
        }
    }
}

fn is_delim(b: u8) -> bool {
    matches!(b, b',' | b' ' | b'\t' | b'\r' | b'\n')
}

/// Returns the next token of `s` at or after byte `*pos` and advances `*pos`
/// past it, or `None` at the end.
pub(super) fn next_token<'a>(s: &'a str, pos: &mut usize) -> Option<Tok<'a>> {
    let bytes = s.as_bytes();
    let mut i = (*pos).min(bytes.len());
    while i < bytes.len() && is_delim(bytes[i]) {
        i += 1;
    }
    if i >= bytes.len() {
        *pos = i;
        return None;
    }
    let start = i;
    let mut depth = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        if depth == 0 && is_delim(b) {
            break;
        }
        match b {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    *pos = i;
    s.get(start..i).map(|text| Tok { off: start, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &str) -> Vec<(usize, &str)> {
        let mut pos = 0;
        let mut out = Vec::new();
        while let Some(t) = next_token(s, &mut pos) {
            out.push((t.off, t.text));
        }
        out
    }

    #[test]
    fn commas_and_whitespace_runs_are_one_separator() {
        assert_eq!(
            all(" a=1, b\tc=2,,d "),
            vec![(1, "a=1"), (6, "b"), (8, "c=2"), (13, "d")]
        );
        assert!(all(" ,\n ").is_empty());
    }

    #[test]
    fn parenthesised_groups_stay_whole_even_unbalanced() {
        assert_eq!(all("learn(a,b c),x"), vec![(0, "learn(a,b c)"), (13, "x")]);
        assert_eq!(all("f(a,b"), vec![(0, "f(a,b")]);
        assert_eq!(all("a),b"), vec![(0, "a)"), (3, "b")]);
    }

    #[test]
    fn offsets_are_char_boundaries_with_multibyte_text() {
        let s = "é=1,ü,ß";
        for (off, text) in all(s) {
            assert_eq!(&s[off..off + text.len()], text);
        }
    }
}
