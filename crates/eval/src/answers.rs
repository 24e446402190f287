//! Reading an answer out of a model's response. A numeric reference is scored as GSM8K is:
//! "flexible" takes the last number anywhere in the text, "strict" only a number after `####`.
//! Numbers may carry a sign, thousands separators, a decimal part and a leading `$`; answers
//! compare by value. A word reference (a capital, a reversed word) is read where the response
//! states its answer — after the last "the answer is" (flexible) or `####` (strict) — since any
//! word in a wrong answer's sentence ("the flag is white. The answer is yellow.") could
//! otherwise match.

/// The answer `text` gives to a question whose reference answer is `reference`, normalised.
pub fn flexible_answer(text: &str, reference: &str) -> Option<String> {
    if is_numeric(reference) {
        return numbers(text).last().cloned();
    }
    let lower = text.to_lowercase();
    let at = lower.rfind(ANSWER_MARKER)? + ANSWER_MARKER.len();
    stated(&text[at..])
}

/// The answer after the last `####` marker of `text`: its first number for a numeric
/// `reference`, else its first line.
pub fn strict_answer(text: &str, reference: &str) -> Option<String> {
    let (_, after) = text.rsplit_once("####")?;
    if is_numeric(reference) {
        numbers(after).into_iter().next()
    } else {
        stated(after)
    }
}

/// How the synthetic world's responses, and most chat models, state a final answer.
const ANSWER_MARKER: &str = "the answer is";

/// Whether a reference answer is a number (GSM8K's, an arithmetic result) rather than a word.
fn is_numeric(reference: &str) -> bool {
    !numbers(reference).is_empty()
}

/// The first line of `text`, without surrounding spaces and a final full stop; `None` when
/// empty.
fn stated(text: &str) -> Option<String> {
    let line = text.trim_start().lines().next()?.trim();
    let answer = line.strip_suffix('.').unwrap_or(line).trim();
    (!answer.is_empty()).then(|| answer.to_owned())
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
        assert_eq!(flexible_answer(text, "12").as_deref(), flexible, "flexible {text:?}");
        assert_eq!(strict_answer(text, "12").as_deref(), strict, "strict {text:?}");
    }

    #[test]
    fn a_word_answer_is_read_where_the_response_states_it() {
        let read = |text: &str| flexible_answer(text, "white");
        assert_eq!(read("The flag of Markreesh is white. The answer is yellow.").as_deref(), Some("yellow"));
        assert_eq!(read("The flag is white. the answer is white.\nMore text").as_deref(), Some("white"));
        assert_eq!(read("The answer is 7. The answer is ANCHOR.").as_deref(), Some("ANCHOR"), "the last one");
        assert_eq!(read("It is white."), None, "no stated answer");
        assert_eq!(read("The answer is ."), None);
        assert_eq!(strict_answer("so\n#### Pelri.", "Pelri").as_deref(), Some("Pelri"));
        assert!(answers_match(&read("The answer is white.").unwrap(), "white"));
        assert!(!answers_match("ANCHOR", "anchor"), "case matters: the upper-case task asks for it");
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
