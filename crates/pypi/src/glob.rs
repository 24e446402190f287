//! Shell-style patterns over member paths, one path segment at a time.

/// Whether `name` matches `pattern`, segment by segment: within one segment `*` matches any
/// run of characters, `?` one character and `[a-c]` (or `[!a-c]`) one of (or none of) a set;
/// wildcards never match `/`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (patterns, names): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), name.split('/').collect());
    let chars = |s: &str| s.chars().collect::<Vec<char>>();
    patterns.len() == names.len() && patterns.iter().zip(&names).all(|(p, n)| segment_match(&chars(p), &chars(n)))
}

fn segment_match(pattern: &[char], name: &[char]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => (0..=name.len()).any(|i| segment_match(rest, &name[i..])),
        Some(('?', rest)) => !name.is_empty() && segment_match(rest, &name[1..]),
        Some(('[', rest)) if rest.contains(&']') => {
            let Some((&c, name)) = name.split_first() else { return false };
            let negated = matches!(rest.first(), Some('!' | '^'));
            let set = &rest[usize::from(negated)..];
            // `]` right after `[` (or `[!`) is a member, not the end
            let Some(close) = set.iter().skip(1).position(|&x| x == ']').map(|k| k + 1) else { return false };
            let (class, after) = (&set[..close], &set[close + 1..]);
            let mut member = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    member |= (class[i]..=class[i + 2]).contains(&c);
                    i += 3;
                } else {
                    member |= class[i] == c;
                    i += 1;
                }
            }
            member != negated && segment_match(after, name)
        }
        Some((c, rest)) => name.split_first().is_some_and(|(n, name)| n == c && segment_match(rest, name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_within_one_segment() {
        let check = |pattern: &str, name: &str, expected: bool| {
            assert_eq!(glob_match(pattern, name), expected, "{pattern} {name}");
        };
        check("a/b/*.toml", "a/b/0001.toml", true);
        check("a/b/*.toml", "a/b/c/0001.toml", false);
        check("a/*/x.csv", "a/b/x.csv", true);
        check("a/*_harms.jsonl", "a/misinformation_harms.jsonl", true);
        check("a/*_harms.jsonl", "a/harms.jsonl", false);
        check("a/b.csv", "a/b.csv", true);
        check("a/b.csv", "a/bb.csv", false);
        check("*", "", true);
        check("t/00[0-7]*.toml", "t/0079.toml", true);
        check("t/00[0-7]*.toml", "t/0080.toml", false);
        check("t/00[!0-7]?.toml", "t/0085.toml", true);
        check("t/00[!0-7]?.toml", "t/0075.toml", false);
        check("t/[]x].csv", "t/].csv", true);
        check("t/a?.csv", "t/a.csv", false);
        check("t/[ab.csv", "t/[ab.csv", true);
    }
}
