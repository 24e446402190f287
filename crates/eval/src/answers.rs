//! Reading a numeric answer out of a model's response, as GSM8K is scored: "flexible" takes
//! the last number anywhere in the text, "strict" only a number after `####`. Numbers may carry
//! a sign, thousands separators, a decimal part and a leading `$`; answers compare by value.

/// The last number in `text`, normalised (no `$`, no commas, no trailing dot).
pub fn flexible_answer(text: &str) -> Option<String> {
    numbers(text).last().cloned()
}

/// The number that follows the last `####` marker of `text`, normalised.
pub fn strict_answer(text: &str) -> Option<String> {
    let (_, after) = text.rsplit_once("####")?;
    numbers(after).into_iter().next()
}

/// Whether `extracted` and the reference answer denote the same number (or, when either is not
/// a number, the same text after trimming).
pub fn answers_match(extracted: &str, reference: &str) -> bool {
    let reference = numbers(reference).into_iter().next().unwrap_or_else(|| reference.trim().to_owned());
    match (extracted.parse::<f64>(), reference.parse::<f64>()) {
        (Ok(a), Ok(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
        _ => extracted.trim() == reference.trim(),
    }
}

/// Every number in `text`, in order, normalised.
fn numbers(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_digit() || is_inner_separator(&chars, i)) {
            i += 1;
        }
        let negative = start > 0 && chars[start - 1] == '-' || start > 1 && chars[start - 1] == '$' && chars[start - 2] == '-';
        let digits: String = chars[start..i].iter().filter(|&&c| c != ',').collect();
        found.push(if negative { format!("-{digits}") } else { digits });
    }
    found
}

/// A `,` or `.` between two digits belongs to the number.
fn is_inner_separator(chars: &[char], i: usize) -> bool {
    matches!(chars[i], ',' | '.')
        && i > 0
        && chars[i - 1].is_ascii_digit()
        && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, flexible: Option<&str>, strict: Option<&str>) {
        assert_eq!(flexible_answer(text).as_deref(), flexible, "flexible {text:?}");
        assert_eq!(strict_answer(text).as_deref(), strict, "strict {text:?}");
    }

    #[test]
    fn numbers_are_extracted_flexibly_and_strictly() {
        check("She has 3 apples and buys 4, so 7.", Some("7"), None);
        check("The total is $1,234.50.", Some("1234.50"), None);
        check("It drops to -15 degrees.", Some("-15"), None);
        check("He owes -$20", Some("-20"), None);
        check("3 + 4 = 7\n#### 7", Some("7"), Some("7"));
        check("#### 1,000 and then 5", Some("5"), Some("1000"));
        check("Pi is about 3.14159", Some("3.14159"), None);
        check("no number here", None, None);
        check("the year 2024-05", Some("-05"), None);
    }

    #[test]
    fn answers_compare_by_value() {
        assert!(answers_match("1234.50", "1,234.5"));
        assert!(answers_match("-15", "#### -15"));
        assert!(answers_match("7", "7"));
        assert!(!answers_match("7", "8"));
        assert!(answers_match("olleh", " olleh "));
        assert!(!answers_match("hello", "olleh"));
    }
}
