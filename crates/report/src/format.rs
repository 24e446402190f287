//! How numbers read in the report's prose and tables.

/// `value` with `decimals` decimals, without a minus sign on a rounded zero.
pub fn fixed(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.starts_with('-') && text[1..].chars().all(|c| c == '0' || c == '.') {
        text[1..].to_owned()
    } else {
        text
    }
}

/// A share as a percentage with one decimal: 0.1234 → `12.3%`.
pub fn percent(share: f64) -> String {
    format!("{}%", fixed(share * 100.0, 1))
}

/// A difference with its sign: `+3.20`, `-0.05`, `0.00`.
pub fn signed(value: f64, decimals: usize) -> String {
    let text = fixed(value, decimals);
    if text.starts_with('-') || text.chars().all(|c| c == '0' || c == '.') {
        text
    } else {
        format!("+{text}")
    }
}

/// Items joined as prose: `a`, `a and b`, `a, b and c`.
pub fn prose_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_cleanly() {
        assert_eq!(fixed(-0.0001, 2), "0.00");
        assert_eq!(fixed(2.345, 1), "2.3");
        assert_eq!(percent(0.1234), "12.3%");
        assert_eq!(percent(1.0), "100.0%");
        assert_eq!(signed(3.2, 2), "+3.20");
        assert_eq!(signed(-0.049, 2), "-0.05");
        assert_eq!(signed(-0.001, 2), "0.00");
        assert_eq!(prose_list(&["a".into()]), "a");
        assert_eq!(prose_list(&["a".into(), "b".into(), "c".into()]), "a, b and c");
    }
}
