//! The tiny study's synthetic world: every set of the default pipeline, generated from the
//! templates and word lists of `data/synthetic/` ([`World`]) and the pipeline seed.
//!
//! A row is drawn in two steps. First a *slot*: a (template, entity) pair of one category of a
//! recipe, taken from a pool — the training pool (training templates and entities), the corpus
//! pool of pretraining (the training pool, plus the held-out request phrasings with training
//! entities: the web has every way of asking, fine-tuning data does not) or the held-out pool
//! (held-out templates and entities, used only by evaluation sets). Then the slot is
//! *realised*: numbers, phrasings and steps are drawn and the text is filled in. Slots are
//! drawn without replacement; a training or corpus pool is refilled when used up, a held-out
//! pool is not, so every evaluation row is a distinct unseen (template, entity) pair.

mod compose;
mod facts;
mod requests;
pub(crate) mod tasks;
mod world;

use anyhow::{bail, Result};

pub use compose::generate;
pub(crate) use requests::every_request;
pub use facts::{fact_table, Country};
pub use world::{Category, Recipe, World, WORLD_FILES};

/// License of the synthetic world's text: it is ours, like the code.
pub const SYNTHETIC_LICENSE: &str = "MIT OR Apache-2.0";

/// Which templates and entities a row may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    Train,
    Corpus,
    Heldout,
}

impl Pool {
    pub fn name(self) -> &'static str {
        match self {
            Pool::Train => "train",
            Pool::Corpus => "corpus",
            Pool::Heldout => "heldout",
        }
    }

    /// Whether an entity, held out or not, belongs to the pool.
    fn includes(self, heldout: bool) -> bool {
        heldout == (self == Pool::Heldout)
    }

    /// The templates of a task kind (arithmetic, string, look-up) in the pool: only requests
    /// widen the corpus' phrasings, so a task's held-out templates stay evaluation-only.
    fn task_templates<'a>(self, train: &'a [String], heldout: &'a [String]) -> &'a [String] {
        if self == Pool::Heldout { heldout } else { train }
    }
}

/// One generated row before it gets an id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    pub kind: &'static str,
    pub category: String,
    pub template: String,
    pub entity: String,
    pub prompt: String,
    pub response: String,
    pub answer: Option<String>,
}

/// `template` with each `{key}` replaced by its value; a slot left unfilled is an error.
pub(crate) fn fill(template: &str, values: &[(&str, &str)]) -> Result<String> {
    let mut text = template.to_owned();
    for (key, value) in values {
        text = text.replace(&format!("{{{key}}}"), value);
    }
    if text.contains(['{', '}']) {
        bail!("template {template:?} has a slot that is not one of {:?}", values.iter().map(|(k, _)| *k).collect::<Vec<_>>());
    }
    Ok(text)
}

/// `text` with its first letter upper-cased.
pub(crate) fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_every_slot_and_rejects_leftovers() {
        assert_eq!(fill("How do I {task}?", &[("task", "bake bread")]).unwrap(), "How do I bake bread?");
        assert_eq!(fill("{a} + {a}", &[("a", "2")]).unwrap(), "2 + 2");
        let err = fill("How do I {tsak}?", &[("task", "x")]).unwrap_err().to_string();
        assert!(err.contains("{tsak}") && err.contains("task"), "{err}");
    }

    #[test]
    fn capitalized_upper_cases_the_first_letter() {
        assert_eq!(capitalized("she"), "She");
        assert_eq!(capitalized("élan"), "Élan");
        assert_eq!(capitalized(""), "");
    }
}
