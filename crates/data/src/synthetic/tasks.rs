//! Tasks with checkable answers: arithmetic, word problems, string tasks and look-ups in the
//! fact table, plus the fact documents of the pretraining corpus. Every response ends with
//! "The answer is <answer>."

use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;

use super::facts::Country;
use super::world::{Arithmetic, Attribute, Level, Person, StringOp, StringTask, WordProblems, WordTemplate};
use super::{capitalized, fill, Item, Pool};
use crate::seed::fnv1a;

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

impl Op {
    pub(crate) const DIRECT: [Op; 3] = [Op::Add, Op::Sub, Op::Mul];

    fn symbol(self) -> &'static str {
        match self {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Op::Add => "plus",
            Op::Sub => "minus",
            Op::Mul => "times",
            Op::Div => "divided by",
        }
    }

    pub(crate) fn category(self) -> &'static str {
        match self {
            Op::Add => "addition",
            Op::Sub => "subtraction",
            Op::Mul => "multiplication",
            Op::Div => "division",
        }
    }

    /// `x op y` when it is a non-negative whole number.
    fn apply(self, x: u64, y: u64) -> Option<u64> {
        match self {
            Op::Add => x.checked_add(y),
            Op::Sub => x.checked_sub(y),
            Op::Mul => x.checked_mul(y),
            Op::Div => (y != 0 && x.is_multiple_of(y)).then(|| x / y),
        }
    }
}

/// A direct arithmetic expression `a op b`, the entity of an arithmetic row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expression {
    pub a: u64,
    pub op: Op,
    pub b: u64,
}

impl Expression {
    pub(crate) fn entity(self) -> String {
        format!("{} {} {}", self.a, self.op.symbol(), self.b)
    }

    /// Held out when the FNV-1a hash of its text is divisible by 4.
    fn heldout(self) -> bool {
        fnv1a(&self.entity()).is_multiple_of(4)
    }
}

/// Every expression of `op` within the operand limits of a pool; results are never negative.
pub(crate) fn expressions(arithmetic: &Arithmetic, op: Op, pool: Pool) -> Vec<Expression> {
    let max = if op == Op::Mul { arithmetic.max_factor } else { arithmetic.max_operand };
    (2..=max)
        .flat_map(|a| (2..=max).map(move |b| Expression { a, op, b }))
        .filter(|e| e.op != Op::Sub || e.a >= e.b)
        .filter(|e| pool.includes(e.heldout()))
        .collect()
}

pub(crate) fn arithmetic(arithmetic: &Arithmetic, template: &str, e: Expression) -> Result<Item> {
    let result = e.op.apply(e.a, e.b).with_context(|| format!("{} has no whole result", e.entity()))?.to_string();
    let (a, b) = (e.a.to_string(), e.b.to_string());
    let values = [("a", a.as_str()), ("b", b.as_str()), ("op", e.op.symbol()), ("op_word", e.op.word()), ("result", result.as_str())];
    Ok(Item {
        kind: "arithmetic",
        category: e.op.category().to_owned(),
        template: template.to_owned(),
        entity: e.entity(),
        prompt: fill(template, &values[..4])?,
        response: with_answer(&fill(&arithmetic.answer, &values)?, &result),
        answer: Some(result),
    })
}

/// One term of a word-problem step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Term {
    /// Operand a, b, c or d (0..4) of the question.
    Operand(usize),
    /// The result of an earlier step.
    Result(usize),
    Number(u64),
}

/// A step `x op y` of a word problem's solution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    pub x: Term,
    pub op: Op,
    pub y: Term,
}

/// Parses step `index` of a template: `x op y` with x, y one of a–d, an earlier r1…, or a number.
pub(crate) fn parse_step(step: &str, index: usize) -> Result<Step> {
    let parts: Vec<&str> = step.split_whitespace().collect();
    let [x, op, y] = parts[..] else { bail!("{step:?}: expected \"x op y\"") };
    let op = match op {
        "+" => Op::Add,
        "-" => Op::Sub,
        "*" => Op::Mul,
        "/" => Op::Div,
        other => bail!("{step:?}: unknown operator {other:?}, expected + - * /"),
    };
    let term = |t: &str| -> Result<Term> {
        if let Some(i) = ["a", "b", "c", "d"].iter().position(|&name| name == t) {
            return Ok(Term::Operand(i));
        }
        if let Some(n) = t.strip_prefix('r').and_then(|n| n.parse::<usize>().ok()) {
            if n == 0 || n > index {
                bail!("{step:?}: r{n} is not an earlier step's result");
            }
            return Ok(Term::Result(n - 1));
        }
        t.parse().map(Term::Number).map_err(|_| anyhow::anyhow!("{step:?}: {t:?} is not a-d, r1.. or a number"))
    };
    Ok(Step { x: term(x)?, op, y: term(y)? })
}

/// The (template, name/item) slots of word problems of a level in a pool; pair (i, j) of name
/// i and item j is held out when (i + j) % 3 == 0.
pub(crate) fn word_slots(w: &WordProblems, level: Level, pool: Pool) -> Vec<(&WordTemplate, &Person, &str)> {
    let pairs: Vec<(&Person, &str)> = w
        .names
        .iter()
        .enumerate()
        .flat_map(|(i, person)| w.items.iter().enumerate().map(move |(j, item)| (person, item.as_str(), (i + j) % 3 == 0)))
        .filter(|(_, _, heldout)| pool.includes(*heldout))
        .map(|(person, item, _)| (person, item))
        .collect();
    w.templates
        .iter()
        .filter(|t| t.level == level && pool.includes(t.heldout))
        .flat_map(|t| pairs.iter().map(move |&(person, item)| (t, person, item)))
        .collect()
}

pub(crate) fn word_problem(w: &WordProblems, template: &WordTemplate, person: &Person, item: &str, rng: &mut StdRng) -> Result<Item> {
    let steps: Vec<Step> = template.steps.iter().enumerate().map(|(i, s)| parse_step(s, i)).collect::<Result<_>>()?;
    let level_max = match template.level {
        Level::Easy => w.easy_max,
        Level::Hard => w.hard_max,
    };
    let factor = |i: usize| steps.iter().any(|s| (s.op == Op::Mul && (s.x == Term::Operand(i) || s.y == Term::Operand(i))) || (s.op == Op::Div && s.y == Term::Operand(i)));
    for _ in 0..10_000 {
        let operands: Vec<u64> = (0..4).map(|i| rng.random_range(2..=if factor(i) { w.max_factor } else { level_max })).collect();
        let Some(results) = solve(&steps, &operands) else { continue };
        let numbers: Vec<String> = operands.iter().map(u64::to_string).collect();
        let pronoun = person.pronoun.as_str();
        let pronoun_cap = capitalized(pronoun);
        let values = [
            ("name", person.name.as_str()),
            ("pronoun", pronoun),
            ("Pronoun", pronoun_cap.as_str()),
            ("items", item),
            ("a", numbers[0].as_str()),
            ("b", numbers[1].as_str()),
            ("c", numbers[2].as_str()),
            ("d", numbers[3].as_str()),
        ];
        let shown = |term: Term| match term {
            Term::Operand(i) => operands[i],
            Term::Result(i) => results[i],
            Term::Number(n) => n,
        };
        let working: Vec<String> = steps.iter().zip(&results).map(|(s, r)| format!("{} {} {} = {r}.", shown(s.x), s.op.symbol(), shown(s.y))).collect();
        let answer = results.last().context("a word problem without steps")?.to_string();
        return Ok(Item {
            kind: "word_problem",
            category: match template.level {
                Level::Easy => "easy",
                Level::Hard => "hard",
            }
            .to_owned(),
            template: template.text.clone(),
            entity: format!("{}/{item}", person.name),
            prompt: fill(&template.text, &values)?,
            response: with_answer(&working.join(" "), &answer),
            answer: Some(answer),
        });
    }
    bail!("tasks.toml: no numbers found that give whole, non-negative results for {:?}", template.text)
}

/// The result of every step, if each is a whole non-negative number.
fn solve(steps: &[Step], operands: &[u64]) -> Option<Vec<u64>> {
    let mut results = Vec::with_capacity(steps.len());
    for step in steps {
        let value = |term: Term| match term {
            Term::Operand(i) => operands.get(i).copied(),
            Term::Result(i) => results.get(i).copied(),
            Term::Number(n) => Some(n),
        };
        results.push(step.op.apply(value(step.x)?, value(step.y)?)?);
    }
    Some(results)
}

/// The (template, word) slots of a string task in a pool; word i is held out when i % 4 == 0.
pub(crate) fn string_slots<'w>(words: &'w [String], task: &'w StringTask, pool: Pool) -> Vec<(&'w str, &'w str)> {
    let templates = pool.task_templates(&task.templates, &task.heldout_templates);
    let words: Vec<&str> = words.iter().enumerate().filter(|(i, _)| pool.includes(i % 4 == 0)).map(|(_, w)| w.as_str()).collect();
    templates.iter().flat_map(|t| words.iter().map(move |w| (t.as_str(), *w))).collect()
}

pub(crate) fn string_task(task: &StringTask, template: &str, word: &str, rng: &mut StdRng) -> Result<Item> {
    let letters: Vec<char> = word.chars().collect();
    let letter = letters.choose(rng).with_context(|| "an empty word in strings.words".to_owned())?.to_string();
    let result = match task.task {
        StringOp::Reverse => letters.iter().rev().collect(),
        StringOp::Upper => word.to_uppercase(),
        StringOp::Length => letters.len().to_string(),
        StringOp::Count => word.matches(letter.as_str()).count().to_string(),
    };
    let values = [("word", word), ("letter", letter.as_str()), ("result", result.as_str())];
    let prompt_values = if task.task == StringOp::Count { &values[..2] } else { &values[..1] };
    Ok(Item {
        kind: "string",
        category: format!("{:?}", task.task).to_lowercase(),
        template: template.to_owned(),
        entity: word.to_owned(),
        prompt: fill(template, prompt_values)?,
        response: with_answer(&fill(&task.answer, &values)?, &result),
        answer: Some(result),
    })
}

/// The (question, country) slots of an attribute in a pool. Every country is stated in the
/// pretraining documents, so held-out look-ups differ by their question templates only.
pub(crate) fn lookup_slots<'w>(attribute: &'w Attribute, countries: &'w [Country], pool: Pool) -> Vec<(&'w str, &'w Country)> {
    let questions = pool.task_templates(&attribute.questions, &attribute.heldout_questions);
    questions.iter().flat_map(|q| countries.iter().map(move |c| (q.as_str(), c))).collect()
}

pub(crate) fn lookup(attribute: &Attribute, question: &str, country: &Country) -> Result<Item> {
    let value = country.field(attribute.name);
    Ok(Item {
        kind: "lookup",
        category: format!("{:?}", attribute.name).to_lowercase(),
        template: question.to_owned(),
        entity: country.name.clone(),
        prompt: fill(question, &[("country", &country.name)])?,
        response: with_answer(&fill(&attribute.answer, &[("country", &country.name), ("value", value)])?, value),
        answer: Some(value.to_owned()),
    })
}

/// A plain-text document stating a country's facts.
pub(crate) fn fact_doc(template: &str, country: &Country) -> Result<Item> {
    Ok(Item {
        kind: "document",
        category: "fact".to_owned(),
        template: template.to_owned(),
        entity: country.name.clone(),
        prompt: String::new(),
        response: fill(template, &country.slots())?,
        answer: None,
    })
}

fn with_answer(text: &str, answer: &str) -> String {
    format!("{text} The answer is {answer}.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::World;
    use rand::SeedableRng;

    #[test]
    fn steps_parse_or_say_why_not() {
        let check = |step: &str, index: usize, expected: Result<Step, &str>| match (parse_step(step, index), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{step}"),
            (Err(err), Err(needle)) => assert!(err.to_string().contains(needle), "{step}: {err}"),
            (got, want) => panic!("{step}: got {got:?}, expected {want:?}"),
        };
        check("a + b", 0, Ok(Step { x: Term::Operand(0), op: Op::Add, y: Term::Operand(1) }));
        check("r1 / c", 1, Ok(Step { x: Term::Result(0), op: Op::Div, y: Term::Operand(2) }));
        check("a * 2", 0, Ok(Step { x: Term::Operand(0), op: Op::Mul, y: Term::Number(2) }));
        check("r1 - d", 0, Err("r1 is not an earlier step's result"));
        check("a % b", 0, Err("unknown operator"));
        check("a +", 0, Err("expected \"x op y\""));
        check("e + a", 0, Err("\"e\" is not a-d"));
    }

    #[test]
    fn solve_keeps_results_whole_and_non_negative() {
        let steps: Vec<Step> = ["a * b", "r1 - c", "r2 / d"].iter().enumerate().map(|(i, s)| parse_step(s, i).unwrap()).collect();
        assert_eq!(solve(&steps, &[3, 4, 2, 5]), Some(vec![12, 10, 2]));
        assert_eq!(solve(&steps, &[3, 4, 20, 5]), None);
        assert_eq!(solve(&steps, &[3, 4, 3, 2]), None);
    }

    #[test]
    fn word_problem_shows_each_step_and_the_answer() {
        let world = World::embedded().unwrap();
        let w = &world.tasks.word_problems;
        let template = w.templates.iter().find(|t| t.steps.len() == 3).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let item = word_problem(w, template, &w.names[0], "apples", &mut rng).unwrap();
        assert_eq!(item.entity, "Mia/apples");
        assert!(item.prompt.starts_with("Mia ") && item.prompt.contains("apples"), "{}", item.prompt);
        let answer = item.answer.clone().unwrap();
        assert!(item.response.ends_with(&format!("= {answer}. The answer is {answer}.")), "{}", item.response);
        assert_eq!(item.response.matches(" = ").count(), 3, "{}", item.response);
    }

    #[test]
    fn string_tasks_compute_their_answers() {
        let world = World::embedded().unwrap();
        let mut rng = StdRng::seed_from_u64(5);
        let answers: Vec<String> = world.tasks.strings.tasks.iter().map(|t| string_task(t, &t.templates[0], "rabbit", &mut rng).unwrap().answer.unwrap()).collect();
        assert_eq!(answers[..3], ["tibbar", "RABBIT", "6"]);
        assert!(["1", "2"].contains(&answers[3].as_str()));
    }

    #[test]
    fn arithmetic_pools_partition_the_expressions() {
        let world = World::embedded().unwrap();
        let a = &world.tasks.arithmetic;
        for op in Op::DIRECT {
            let train = expressions(a, op, Pool::Train);
            let heldout = expressions(a, op, Pool::Heldout);
            assert!(!heldout.is_empty() && heldout.len() * 2 < train.len(), "{op:?}");
            assert!(train.iter().all(|e| !heldout.contains(e)));
        }
        let item = arithmetic(a, "What is {a} {op_word} {b}?", Expression { a: 7, op: Op::Sub, b: 3 }).unwrap();
        assert_eq!((item.prompt.as_str(), item.response.as_str()), ("What is 7 minus 3?", "7 - 3 = 4. The answer is 4."));
    }
}
