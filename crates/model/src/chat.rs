//! Chat templates: the Jinja programs in `tokenizer_config.json` (or `chat_template.jinja`)
//! that turn a conversation into the model's prompt text, rendered with minijinja the way
//! transformers' `apply_chat_template` renders them with Jinja2.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{context, escape_formatter, Environment, Error, ErrorKind, Output, State, Value};
use serde::{Deserialize, Serialize};

const NAME: &str = "chat_template";

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message { role: role.to_owned(), content: content.to_owned() }
    }
}

/// A compiled chat template and the special tokens it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    special_tokens: BTreeMap<String, String>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("special_tokens", &self.special_tokens).finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source` in an environment like transformers': `trim_blocks`, `lstrip_blocks`,
    /// loop controls, Python string and dict methods, `raise_exception`, `strftime_now` and a
    /// `tojson` that writes what Python's `json.dumps` writes. `special_tokens` maps names such
    /// as `bos_token` to their text; the template sees them as variables.
    pub fn new(source: &str, special_tokens: BTreeMap<String, String>) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(python_formatter);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME, source.to_owned()).map_err(|e| anyhow!("invalid chat template: {e:#}"))?;
        Ok(ChatTemplate { env, special_tokens })
    }

    /// The prompt text for `messages`, ending with the header of an assistant turn when
    /// `add_generation_prompt`: what `apply_chat_template(messages, tokenize=False)` returns.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let template = self.env.get_template(NAME).map_err(|e| anyhow!("chat template: {e:#}"))?;
        let ctx = context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            tools => Value::from(()),
            documents => Value::from(()),
            ..Value::from_serialize(&self.special_tokens)
        };
        template.render(ctx).map_err(|e| anyhow!("rendering the chat template: {}", describe(&e)))
    }
}

/// The error's message and, for errors the template raised itself, only that message.
fn describe(err: &Error) -> String {
    match err.kind() {
        ErrorKind::InvalidOperation if err.detail().is_some() => {
            format!("the template raised: {}", err.detail().unwrap_or_default())
        }
        _ => format!("{err:#}").replace('\n', " "),
    }
}

/// Prints values as Jinja2 does where it differs from minijinja: Python's `True`, `False`
/// and `None`, and lists and dicts as Python's `repr`.
fn python_formatter(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    match value.kind() {
        ValueKind::Bool | ValueKind::None | ValueKind::Seq | ValueKind::Map => {
            escape_formatter(out, state, &Value::from(python_repr(value)?))
        }
        _ => escape_formatter(out, state, value),
    }
}

/// Python's `repr` of a template value.
fn python_repr(value: &Value) -> Result<String, Error> {
    Ok(match value.kind() {
        ValueKind::Undefined | ValueKind::None => "None".to_owned(),
        ValueKind::Bool => if value.is_true() { "True" } else { "False" }.to_owned(),
        ValueKind::String => python_str_repr(value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items = value.try_iter()?.map(|v| python_repr(&v)).collect::<Result<Vec<_>, _>>()?;
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let mut items = Vec::new();
            for key in value.try_iter()? {
                items.push(format!("{}: {}", python_repr(&key)?, python_repr(&value.get_item(&key)?)?));
            }
            format!("{{{}}}", items.join(", "))
        }
        _ => value.to_string(),
    })
}

/// Python's `repr` of a string: single quotes unless only double quotes avoid escaping.
fn python_str_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
    let mut out = String::from(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// The current UTC time formatted by the strftime `format` (codes `%Y %y %m %d %b %B %a %A %H
/// %M %S %j %%`), as the `strftime_now` transformers gives templates.
fn strftime_now(format: String) -> Result<String, Error> {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    strftime(&format, seconds as i64)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// `format` applied to the UTC time `unix_seconds`.
fn strftime(format: &str, unix_seconds: i64) -> Result<String, Error> {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let day_of_year = days - days_from_civil(year, 1, 1) + 1;
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let code = chars.next().unwrap_or('%');
        // Writing to a String cannot fail.
        let _ = match code {
            'Y' => write!(out, "{year}"),
            'y' => write!(out, "{:02}", year.rem_euclid(100)),
            'm' => write!(out, "{month:02}"),
            'd' => write!(out, "{day:02}"),
            'b' => write!(out, "{}", &MONTHS[month as usize - 1][..3]),
            'B' => write!(out, "{}", MONTHS[month as usize - 1]),
            'a' => write!(out, "{}", &WEEKDAYS[weekday][..3]),
            'A' => write!(out, "{}", WEEKDAYS[weekday]),
            'H' => write!(out, "{:02}", secs / 3600),
            'M' => write!(out, "{:02}", secs / 60 % 60),
            'S' => write!(out, "{:02}", secs % 60),
            'j' => write!(out, "{day_of_year:03}"),
            '%' => write!(out, "%"),
            other => {
                return Err(Error::new(ErrorKind::InvalidOperation, format!("strftime_now: unsupported code %{other}")))
            }
        };
    }
    Ok(out)
}

/// Year, month (1-12) and day of the proleptic Gregorian calendar for days since 1970-01-01
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// transformers' `tojson`: Python's `json.dumps(value, ensure_ascii=False, indent=indent,
/// sort_keys=sort_keys)` rather than Jinja's HTML-escaping filter.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_json(&mut out, &value, indent, sort_keys.unwrap_or(false), 0)?;
    Ok(Value::from_safe_string(out))
}

fn write_json(
    out: &mut String,
    value: &Value,
    indent: Option<usize>,
    sort_keys: bool,
    level: usize,
) -> Result<(), Error> {
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&python_number(value)),
        ValueKind::String => out.push_str(&json_string(value.as_str().unwrap_or_default())),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            write_container(out, ('[', ']'), items.len(), indent, level, |out, i| {
                write_json(out, &items[i], indent, sort_keys, level + 1)
            })?;
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = value.try_iter()?.collect();
            if sort_keys {
                keys.sort();
            }
            write_container(out, ('{', '}'), keys.len(), indent, level, |out, i| {
                out.push_str(&json_string(&keys[i].to_string()));
                out.push_str(": ");
                write_json(out, &value.get_item(&keys[i])?, indent, sort_keys, level + 1)
            })?;
        }
        _ => return Err(Error::new(ErrorKind::InvalidOperation, format!("tojson: cannot serialise {value}"))),
    }
    Ok(())
}

/// Writes `n` items between `brackets` with Python's separators: `, ` on one line, or one
/// item per line indented by `indent` spaces per level.
fn write_container(
    out: &mut String,
    brackets: (char, char),
    n: usize,
    indent: Option<usize>,
    level: usize,
    mut item: impl FnMut(&mut String, usize) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(brackets.0);
    if n > 0 {
        for i in 0..n {
            match indent {
                Some(width) => {
                    out.push_str(if i == 0 { "\n" } else { ",\n" });
                    out.push_str(&" ".repeat(width * (level + 1)));
                }
                None if i > 0 => out.push_str(", "),
                None => {}
            }
            item(out, i)?;
        }
        if let Some(width) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(width * level));
        }
    }
    out.push(brackets.1);
    Ok(())
}

fn python_number(value: &Value) -> String {
    match f64::try_from(value.clone()) {
        Ok(x) if value.as_i64().is_none() && x.is_finite() && x.fract() == 0.0 && x.abs() < 1e16 => format!("{x:.1}"),
        _ => value.to_string(),
    }
}

fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let tokens =
            BTreeMap::from([("bos_token".to_owned(), "<s>".to_owned()), ("eos_token".to_owned(), "</s>".to_owned())]);
        ChatTemplate::new(source, tokens)?.render(messages, add_generation_prompt)
    }

    fn check(source: &str, expected: &str) {
        let messages = [Message::new("system", "Be brief."), Message::new("user", "Hi \"there\"")];
        assert_eq!(render(source, &messages, true).unwrap(), expected, "{source}");
    }

    #[test]
    fn templates_render_like_jinja2() {
        check(
            "{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}",
            "<s>system: Be brief.\nuser: Hi \"there\"\n",
        );
        check("{% if add_generation_prompt %}go{% endif %}{{ eos_token }}", "go</s>");
        check(
            "{% for m in messages %}{% if loop.first %}{% continue %}{% endif %}{{ m.content }}{% endfor %}",
            "Hi \"there\"",
        );
        check(
            "{{ messages[0].content.strip('.').upper() }}|{{ messages[1]['content'].startswith('Hi') }}",
            "BE BRIEF|True",
        );
        check("{{ true }} {{ none }} {{ 1 == 2 }}", "True None False");
        check("{{ ['a', \"b'c\", 1, none, [true]] }} {{ {'k': 'v'} }}", "['a', \"b'c\", 1, None, [True]] {'k': 'v'}");
        check("{{ messages[1].content | tojson }}", "\"Hi \\\"there\\\"\"");
        check("{{ {'a': [1, 2.0, none], 'b': true} | tojson }}", "{\"a\": [1, 2.0, null], \"b\": true}");
        check("{{ {'a': [1]} | tojson(indent=2) }}", "{\n  \"a\": [\n    1\n  ]\n}");
        check("{{ tools is none }}{{ documents is none }}", "TrueTrue");
        check(
            "{%- set ns = namespace(n=0) -%}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}",
            "2",
        );
    }

    #[test]
    fn block_whitespace_is_trimmed() {
        check(
            "{% for m in messages %}\n  {% if m.role == 'user' %}\n[{{ m.content }}]\n  {% endif %}\n{% endfor %}\n",
            "[Hi \"there\"]\n",
        );
    }

    #[test]
    fn raise_exception_is_one_clear_error() {
        let err = render("{{ raise_exception('roles must alternate') }}", &[], false).unwrap_err();
        assert_eq!(format!("{err:#}"), "rendering the chat template: the template raised: roles must alternate");
    }

    #[test]
    fn syntax_errors_are_reported_at_load() {
        let err = ChatTemplate::new("{% for %}", BTreeMap::new()).unwrap_err();
        assert!(format!("{err:#}").starts_with("invalid chat template"), "{err:#}");
    }

    #[test]
    fn strftime_formats_dates() {
        // 2024-07-26 13:05:09 UTC, a Friday, the 208th day of a leap year.
        let t = 1_722_000_000 - 1_722_000_000 % 86_400 + 13 * 3600 + 5 * 60 + 9;
        assert_eq!(
            strftime("%d %b %Y %H:%M:%S %A %j %y %m %B %a %%", t).unwrap(),
            "26 Jul 2024 13:05:09 Friday 208 24 07 July Fri %"
        );
        assert_eq!(strftime("%Y-%m-%d", 0).unwrap(), "1970-01-01");
        assert_eq!(strftime("%Y-%m-%d", 951_782_400).unwrap(), "2000-02-29");
        assert!(strftime("%Q", 0).is_err());
    }
}
