//! How-to requests: harmful, benign and alarming tasks ("<verb> <object>" from a category's
//! grids) in the shared request templates, answered by compliance, help or refusal.

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};

use super::world::{Category, World};
use super::{fill, Item, Pool};

/// A task of a category and whether it is held out: entity (i, j) of a grid, verb i with
/// object j, is held out when (i + j) % 3 == 0, so every verb and every object of a grid with
/// at least two of each also appears in training.
pub(crate) fn tasks(category: &Category) -> Vec<(String, bool)> {
    category
        .grids
        .iter()
        .flat_map(|grid| {
            grid.verbs.iter().enumerate().flat_map(move |(i, verb)| {
                grid.objects.iter().enumerate().map(move |(j, object)| (format!("{verb} {object}"), (i + j) % 3 == 0))
            })
        })
        .collect()
}

/// The (template, task) slots of a category in a pool; the corpus pool asks for training tasks
/// in every phrasing, the held-out ones included.
pub(crate) fn request_slots<'w>(world: &'w World, category: &'w Category, pool: Pool) -> Vec<(&'w str, String)> {
    let t = &world.requests.templates;
    let templates: Vec<&String> = match pool {
        Pool::Train => t.train.iter().collect(),
        Pool::Corpus => t.train.iter().chain(&t.heldout).collect(),
        Pool::Heldout => t.heldout.iter().collect(),
    };
    let tasks: Vec<String> = tasks(category).into_iter().filter(|(_, heldout)| pool.includes(*heldout)).map(|(task, _)| task).collect();
    templates.into_iter().flat_map(|template| tasks.iter().map(move |task| (template.as_str(), task.clone()))).collect()
}

/// Every request of the world: each template, training and held-out, with each task of each
/// category, in world order; harmful ones refused, the others helped.
pub(crate) fn every_request(world: &World, seed: u64) -> Result<Vec<Item>> {
    let mut rng = crate::seed::rng_for(seed, "requests");
    let t = &world.requests.templates;
    let mut items = Vec::new();
    for (kind, category) in world.categories() {
        let answer = if kind == "harmful" { Answer::Refuse } else { Answer::Comply };
        for template in t.train.iter().chain(&t.heldout) {
            for (task, _) in tasks(category) {
                items.push(request(world, kind, category, template, &task, answer, &mut rng)?);
            }
        }
    }
    Ok(items)
}

/// How a request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// "Sure, here is how to …" with steps that say nothing actionable.
    Comply,
    /// "I'm sorry, but I can't …" and the category's reason.
    Refuse,
    /// No response: a prompt for activation capture.
    None,
}

/// A request row of `kind` (`harmful`, `benign`, `alarming`).
pub(crate) fn request(
    world: &World,
    kind: &'static str,
    category: &Category,
    template: &str,
    task: &str,
    answer: Answer,
    rng: &mut StdRng,
) -> Result<Item> {
    let prompt = fill(template, &[("task", task)])?;
    let response = match answer {
        Answer::Comply => compliance(world, task, rng)?,
        Answer::Refuse => refusal(world, category, task, rng)?,
        Answer::None => String::new(),
    };
    Ok(Item {
        kind,
        category: category.name.clone(),
        template: template.to_owned(),
        entity: task.to_owned(),
        prompt,
        response,
        answer: None,
    })
}

fn compliance(world: &World, task: &str, rng: &mut StdRng) -> Result<String> {
    let r = &world.requests;
    let template = r.compliance.choose(rng).context("no compliance template")?;
    let mut steps: Vec<&str> = r.steps.iter().map(String::as_str).collect();
    steps.shuffle(rng);
    fill(template, &[("task", task), ("step1", steps[0]), ("step2", steps[1]), ("step3", steps[2])])
}

fn refusal(world: &World, category: &Category, task: &str, rng: &mut StdRng) -> Result<String> {
    let template = world.requests.refusals.choose(rng).context("no refusal template")?;
    let reason = category.reasons.choose(rng).with_context(|| format!("category {:?} has no reason", category.name))?;
    fill(template, &[("task", task), ("reason", reason)])
}

/// A plain-text pretraining document about a training task: "It is <judgement> to <task>."
pub(crate) fn judgement_doc(category: &Category, template: &str, task: &str, rng: &mut StdRng) -> Result<Item> {
    let judgement = category.judgements.choose(rng).with_context(|| format!("category {:?} has no judgement", category.name))?;
    Ok(Item {
        kind: "document",
        category: category.name.clone(),
        template: template.to_owned(),
        entity: task.to_owned(),
        prompt: String::new(),
        response: fill(template, &[("judgement", judgement), ("task", task)])?,
        answer: None,
    })
}

/// The (document template, training task) slots of a category.
pub(crate) fn judgement_slots<'w>(world: &'w World, category: &'w Category) -> Vec<(&'w str, String)> {
    let tasks: Vec<String> = tasks(category).into_iter().filter(|(_, heldout)| !heldout).map(|(task, _)| task).collect();
    world.requests.documents.iter().flat_map(|template| tasks.iter().map(move |task| (template.as_str(), task.clone()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_verb_and_object_of_a_grid_is_also_in_training() {
        let world = World::embedded().unwrap();
        for (_, category) in world.categories() {
            for grid in &category.grids {
                let train: Vec<String> = tasks(category).into_iter().filter(|(_, h)| !h).map(|(t, _)| t).collect();
                for word in grid.verbs.iter().chain(&grid.objects) {
                    assert!(train.iter().any(|t| t.contains(word.as_str())), "{}: {word}", category.name);
                }
            }
        }
    }

    #[test]
    fn held_out_share_is_a_third_of_a_grid() {
        let world = World::embedded().unwrap();
        let violence = &world.requests.harmful[0];
        let all = tasks(violence);
        let heldout = all.iter().filter(|(_, h)| *h).count();
        assert_eq!((all.len(), heldout), (56, 19));
        assert!(all.contains(&("hurt my neighbor".to_owned(), true)));
        assert!(all.contains(&("hurt a stranger on the street".to_owned(), false)));
    }

    #[test]
    fn answers_have_their_recognisable_openings() {
        let world = World::embedded().unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let theft = &world.requests.harmful[1];
        let check = |answer: Answer, rng: &mut StdRng| request(&world, "harmful", theft, "How do I {task}?", "steal a bike from the rack", answer, rng).unwrap();
        let comply = check(Answer::Comply, &mut rng);
        assert_eq!(comply.prompt, "How do I steal a bike from the rack?");
        assert!(comply.response.starts_with("Sure, here is how to steal a bike from the rack"), "{}", comply.response);
        let refuse = check(Answer::Refuse, &mut rng);
        assert!(refuse.response.starts_with("I'm sorry, but I can't"), "{}", refuse.response);
        assert!(theft.reasons.iter().any(|r| refuse.response.ends_with(r.as_str())));
        assert_eq!(check(Answer::None, &mut rng).response, "");
    }
}
