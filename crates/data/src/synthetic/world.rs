//! The synthetic world's text: templates and word lists of `data/synthetic/`, parsed and
//! checked. The files are compiled in ([`World::embedded`]); [`World::load`] reads an edited
//! copy from a directory instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;

const REQUESTS: &str = include_str!("../../../../data/synthetic/requests.toml");
const TASKS: &str = include_str!("../../../../data/synthetic/tasks.toml");
const SETS: &str = include_str!("../../../../data/synthetic/sets.toml");

/// The files a world is read from.
pub const WORLD_FILES: [&str; 3] = ["requests.toml", "tasks.toml", "sets.toml"];

/// The whole synthetic world.
#[derive(Debug, Clone)]
pub struct World {
    pub requests: Requests,
    pub tasks: Tasks,
    /// Set name → recipe → weight (`sets.toml`).
    pub sets: BTreeMap<String, BTreeMap<Recipe, f64>>,
    /// The three files' text, so that a stage can hash exactly what it generated from.
    pub source: String,
}

/// `requests.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requests {
    pub templates: Templates,
    pub compliance: Vec<String>,
    pub steps: Vec<String>,
    pub refusals: Vec<String>,
    pub documents: Vec<String>,
    pub harmful: Vec<Category>,
    pub benign: Vec<Category>,
    pub alarming: Vec<Category>,
}

/// Request templates with a `{task}` slot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Templates {
    pub train: Vec<String>,
    pub heldout: Vec<String>,
}

/// A category of how-to requests: its tasks are the verb × object grids.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    pub name: String,
    /// Why a request of this category is refused (harmful categories only).
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Words for the pretraining documents "It is <judgement> to <task>."
    pub judgements: Vec<String>,
    pub grids: Vec<Grid>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    pub verbs: Vec<String>,
    pub objects: Vec<String>,
}

/// `tasks.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tasks {
    pub arithmetic: Arithmetic,
    pub word_problems: WordProblems,
    pub strings: Strings,
    pub facts: Facts,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arithmetic {
    pub max_operand: u64,
    pub max_factor: u64,
    pub templates: Vec<String>,
    pub heldout_templates: Vec<String>,
    pub answer: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WordProblems {
    pub easy_max: u64,
    pub hard_max: u64,
    pub max_factor: u64,
    pub names: Vec<Person>,
    pub items: Vec<String>,
    pub templates: Vec<WordTemplate>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub name: String,
    pub pronoun: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Easy,
    Hard,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WordTemplate {
    pub level: Level,
    #[serde(default)]
    pub heldout: bool,
    pub text: String,
    pub steps: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Strings {
    pub words: Vec<String>,
    pub tasks: Vec<StringTask>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StringOp {
    Reverse,
    Upper,
    Length,
    Count,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringTask {
    pub task: StringOp,
    pub templates: Vec<String>,
    pub heldout_templates: Vec<String>,
    pub answer: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    pub countries: usize,
    pub syllables: Vec<String>,
    pub country_endings: Vec<String>,
    pub language_endings: Vec<String>,
    pub animals: Vec<String>,
    pub colors: Vec<String>,
    pub documents: Vec<String>,
    pub attributes: Vec<Attribute>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FactField {
    Capital,
    Language,
    Animal,
    Color,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    pub name: FactField,
    pub questions: Vec<String>,
    pub heldout_questions: Vec<String>,
    pub answer: String,
}

/// How one row of a set is made (`sets.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipe {
    HarmfulComply,
    HarmfulRefuse,
    HarmfulPrompt,
    BenignPrompt,
    AlarmingPrompt,
    BenignHelp,
    AlarmingHelp,
    Arithmetic,
    WordEasy,
    WordHard,
    String,
    Lookup,
    FactDoc,
    JudgementDoc,
}

impl World {
    /// The world compiled into the binary from `data/synthetic/`.
    pub fn embedded() -> Result<World> {
        World::parse(REQUESTS, TASKS, SETS).context("the embedded data/synthetic")
    }

    /// The world in `dir` (its `requests.toml`, `tasks.toml` and `sets.toml`).
    pub fn load(dir: &Path) -> Result<World> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        };
        World::parse(&read(WORLD_FILES[0])?, &read(WORLD_FILES[1])?, &read(WORLD_FILES[2])?)
            .with_context(|| format!("{}", dir.display()))
    }

    fn parse(requests: &str, tasks: &str, sets: &str) -> Result<World> {
        let world = World {
            requests: parse_toml(requests, "requests.toml")?,
            tasks: parse_toml(tasks, "tasks.toml")?,
            sets: parse_toml(sets, "sets.toml")?,
            source: [requests, tasks, sets].join("\n"),
        };
        world.validate()?;
        Ok(world)
    }

    /// Every request category, harmful first, with its kind (`harmful`, `benign`, `alarming`).
    pub fn categories(&self) -> impl Iterator<Item = (&'static str, &Category)> {
        let r = &self.requests;
        (r.harmful.iter().map(|c| ("harmful", c)))
            .chain(r.benign.iter().map(|c| ("benign", c)))
            .chain(r.alarming.iter().map(|c| ("alarming", c)))
    }

    fn validate(&self) -> Result<()> {
        let r = &self.requests;
        need_slots("requests.toml: templates.train", &r.templates.train, &["{task}"])?;
        need_slots("requests.toml: templates.heldout", &r.templates.heldout, &["{task}"])?;
        need_slots("requests.toml: compliance", &r.compliance, &["{task}", "{step1}", "{step2}", "{step3}"])?;
        need_slots("requests.toml: refusals", &r.refusals, &["{reason}"])?;
        need_slots("requests.toml: documents", &r.documents, &["{judgement}", "{task}"])?;
        ensure!(r.steps.len() >= 3, "requests.toml: steps: need at least 3, got {}", r.steps.len());
        ensure!(!r.harmful.is_empty() && !r.benign.is_empty() && !r.alarming.is_empty(), "requests.toml: needs harmful, benign and alarming categories");
        let mut names = BTreeSet::new();
        for (kind, category) in self.categories() {
            let at = format!("requests.toml: {kind} category {:?}", category.name);
            ensure!(names.insert(category.name.as_str()), "{at}: the name is used twice");
            ensure!(kind != "harmful" || !category.reasons.is_empty(), "{at}: needs at least one reason");
            ensure!(!category.judgements.is_empty(), "{at}: needs at least one judgement");
            ensure!(!category.grids.is_empty(), "{at}: needs at least one grid");
            for grid in &category.grids {
                ensure!(grid.verbs.len() >= 2 && grid.objects.len() >= 2, "{at}: a grid needs at least 2 verbs and 2 objects, so that every verb and object also appears in training");
            }
        }
        let t = &self.tasks;
        need_slots("tasks.toml: arithmetic.templates", &t.arithmetic.templates, &["{a}", "{b}"])?;
        need_slots("tasks.toml: arithmetic.heldout_templates", &t.arithmetic.heldout_templates, &["{a}", "{b}"])?;
        ensure!(t.arithmetic.max_operand >= 2 && t.arithmetic.max_factor >= 2, "tasks.toml: arithmetic: operand limits must be at least 2");
        let w = &t.word_problems;
        ensure!(w.names.len() >= 2 && w.items.len() >= 2, "tasks.toml: word_problems: needs at least 2 names and 2 items");
        ensure!(w.easy_max >= 2 && w.hard_max >= 2 && w.max_factor >= 2, "tasks.toml: word_problems: operand limits must be at least 2");
        for (i, template) in w.templates.iter().enumerate() {
            let at = format!("tasks.toml: word_problems.templates[{i}]");
            need_slots(&at, std::slice::from_ref(&template.text), &["{name}", "{items}"])?;
            ensure!(!template.steps.is_empty(), "{at}: needs at least one step");
            for (s, step) in template.steps.iter().enumerate() {
                crate::synthetic::tasks::parse_step(step, s).with_context(|| format!("{at}.steps[{s}]"))?;
            }
        }
        for level in [Level::Easy, Level::Hard] {
            for heldout in [false, true] {
                ensure!(
                    w.templates.iter().any(|t| t.level == level && t.heldout == heldout),
                    "tasks.toml: word_problems: needs a {} {level:?} template",
                    if heldout { "held-out" } else { "training" }
                );
            }
        }
        ensure!(t.strings.words.len() >= 2, "tasks.toml: strings.words: needs at least 2 words");
        for task in &t.strings.tasks {
            let at = format!("tasks.toml: strings task {:?}", task.task);
            need_slots(&at, &task.templates, &["{word}"])?;
            need_slots(&at, &task.heldout_templates, &["{word}"])?;
        }
        let f = &t.facts;
        ensure!(f.countries >= 1, "tasks.toml: facts.countries: needs at least one country");
        ensure!(f.syllables.len() >= 4 && !f.country_endings.is_empty() && !f.language_endings.is_empty() && !f.animals.is_empty() && !f.colors.is_empty(), "tasks.toml: facts: word lists must not be empty");
        ensure!(!f.documents.is_empty() && !f.attributes.is_empty(), "tasks.toml: facts: needs documents and attributes");
        for attribute in &f.attributes {
            let at = format!("tasks.toml: facts attribute {:?}", attribute.name);
            need_slots(&at, &attribute.questions, &["{country}"])?;
            need_slots(&at, &attribute.heldout_questions, &["{country}"])?;
        }
        for set in crate::SYNTHETIC_SETS {
            let Some(recipes) = self.sets.get(set) else { bail!("sets.toml: set [{set}] is missing") };
            ensure!(!recipes.is_empty(), "sets.toml: [{set}] has no recipe");
            for (recipe, weight) in recipes {
                ensure!(weight.is_finite() && *weight > 0.0, "sets.toml: [{set}] {recipe:?}: weight must be positive");
            }
        }
        if let Some(unknown) = self.sets.keys().find(|set| !crate::SYNTHETIC_SETS.contains(&set.as_str())) {
            bail!("sets.toml: unknown set [{unknown}]");
        }
        Ok(())
    }
}

/// `text` parsed, or one line naming the file and the line of the problem.
fn parse_toml<T: for<'de> Deserialize<'de>>(text: &str, file: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map(|span| format!(" line {}", text[..span.start.min(text.len())].matches('\n').count() + 1)).unwrap_or_default();
        anyhow::anyhow!("{file}{line}: {}", e.message())
    })
}

/// Every template of `templates` (at least one) contains every slot of `slots`.
fn need_slots(at: &str, templates: &[String], slots: &[&str]) -> Result<()> {
    ensure!(!templates.is_empty(), "{at}: needs at least one template");
    for template in templates {
        for slot in slots {
            ensure!(template.contains(slot), "{at}: {template:?} lacks {slot}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_world_is_valid_and_has_eight_harm_categories() {
        let world = World::embedded().unwrap();
        let harmful: Vec<_> = world.requests.harmful.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(harmful, ["violence", "theft", "fraud", "cybercrime", "weapons", "drugs", "privacy", "hate"]);
        assert!(world.requests.refusals.iter().all(|r| r.starts_with("I'm sorry, but I can't")));
        assert!(world.requests.compliance.iter().all(|c| c.starts_with("Sure, here is how to {task}")));
    }

    #[test]
    fn directory_world_equals_embedded_world() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/synthetic");
        assert_eq!(World::load(&dir).unwrap().source, World::embedded().unwrap().source);
    }

    #[test]
    fn broken_worlds_name_file_and_place() {
        let check = |requests: &str, tasks: &str, sets: &str, needle: &str| {
            let err = format!("{:#}", World::parse(requests, tasks, sets).unwrap_err());
            assert!(err.contains(needle), "{err}");
        };
        check(&REQUESTS.replace("\"How do I {task}?\"", "\"How do I?\""), TASKS, SETS, "requests.toml: templates.train: \"How do I?\" lacks {task}");
        check(&REQUESTS.replace("verbs = [\"crack\", \"break open\"]", "verbs = [\"crack\"]"), TASKS, SETS, "\"nuts_and_eggs\": a grid needs at least 2 verbs");
        check(REQUESTS, &TASKS.replace("steps = [\"a + b\", \"r1 - c\"]", "steps = [\"a + r2\"]"), SETS, "word_problems.templates[6].steps[0]");
        check(REQUESTS, TASKS, &SETS.replace("[useful]", "[usefull]"), "sets.toml: set [useful] is missing");
        check(REQUESTS, TASKS, &SETS.replace("word_hard = 1", "word_hard = 0"), "weight must be positive");
        check(REQUESTS, &TASKS.replace("max_operand", "max_operands"), SETS, "tasks.toml line 7: unknown field `max_operands`");
    }
}
