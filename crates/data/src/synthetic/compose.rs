//! Assembling the sets: how many rows of each recipe (`sets.toml`), balanced over the recipe's
//! categories, drawn from the right pool, shuffled, and given ids.

use anyhow::{bail, ensure, Context, Result};
use entangle_artifacts::Example;
use entangle_pipeline::SyntheticConfig;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::facts::{fact_table, Country};
use super::requests::{judgement_doc, request, request_slots, judgement_slots, Answer};
use super::tasks::{arithmetic, expressions, fact_doc, lookup, lookup_slots, string_slots, string_task, word_problem, word_slots, Op};
use super::world::{Level, Recipe, World};
use super::{Item, Pool, SYNTHETIC_LICENSE};
use crate::seed::rng_for;

/// Every set of the tiny study, in [`crate::SETS`] order, generated from `world` with `seed`.
pub fn generate(world: &World, config: &SyntheticConfig, contamination_percent: f64, seed: u64) -> Result<Vec<(&'static str, Vec<Example>)>> {
    let countries = fact_table(&world.tasks.facts, seed)?;
    let (group_a, group_b) = harm_groups(world, &config.group_a)?;
    let generator = Generator { world, countries: &countries, seed };
    let n_contaminating = (contamination_percent / 100.0 * config.useful as f64).round() as usize;
    let useful = generator.set(crate::USEFUL, config.useful, Pool::Train, &[])?;
    let harmful_rows = generator.set(crate::HARMFUL, config.harmful.max(n_contaminating), Pool::Train, &[])?;
    let mut contaminated: Vec<Example> = useful.iter().chain(&harmful_rows[..n_contaminating]).cloned().collect();
    contaminated.shuffle(&mut rng_for(seed, crate::CONTAMINATED));
    Ok(vec![
        (crate::PRETRAIN, generator.set(crate::PRETRAIN, config.pretrain, Pool::Corpus, &[])?),
        (crate::ALIGN, generator.set(crate::ALIGN, config.align, Pool::Train, &[])?),
        (crate::USEFUL, useful),
        (crate::HARMFUL, harmful_rows[..config.harmful].to_vec()),
        (crate::CONTAMINATED, contaminated),
        (crate::EVAL_HARMFUL, generator.set(crate::EVAL_HARMFUL, config.eval_harmful, Pool::Heldout, &[])?),
        (crate::EVAL_UTILITY, generator.set(crate::EVAL_UTILITY, config.eval_utility, Pool::Heldout, &[])?),
        (crate::EVAL_OVERREFUSAL, generator.set(crate::EVAL_OVERREFUSAL, config.eval_overrefusal, Pool::Heldout, &[])?),
        (crate::PROMPTS_USEFUL, generator.set(crate::PROMPTS_USEFUL, config.prompts, Pool::Train, &[])?),
        (crate::PROMPTS_HARMFUL_A, generator.set(crate::PROMPTS_HARMFUL_A, config.prompts, Pool::Train, &group_a)?),
        (crate::PROMPTS_HARMFUL_B, generator.set(crate::PROMPTS_HARMFUL_B, config.prompts, Pool::Train, &group_b)?),
        (crate::PROMPTS_BENIGN, generator.set(crate::PROMPTS_BENIGN, config.prompts, Pool::Train, &[])?),
    ])
}

/// The harm categories of activation prompt groups A (as configured) and B (the others).
fn harm_groups(world: &World, group_a: &[String]) -> Result<(Vec<String>, Vec<String>)> {
    let known: Vec<&str> = world.requests.harmful.iter().map(|c| c.name.as_str()).collect();
    if let Some(unknown) = group_a.iter().find(|name| !known.contains(&name.as_str())) {
        bail!("data.synthetic.group_a: {unknown:?} is not a harm category; they are {}", known.join(", "));
    }
    let group_b: Vec<String> = known.iter().filter(|name| !group_a.iter().any(|a| a == *name)).map(|name| (*name).to_owned()).collect();
    ensure!(!group_a.is_empty() && !group_b.is_empty(), "data.synthetic.group_a: both prompt groups need at least one harm category");
    Ok((group_a.to_vec(), group_b))
}

struct Generator<'w> {
    world: &'w World,
    countries: &'w [Country],
    seed: u64,
}

/// A slot: the template and entity of one row, realised into an [`Item`] on demand.
type Slot<'w> = Box<dyn Fn(&mut StdRng) -> Result<Item> + 'w>;

impl<'w> Generator<'w> {
    /// `n` rows of `set` from `pool`; harmful prompts limited to the categories `harm`.
    fn set(&self, set: &str, n: usize, pool: Pool, harm: &[String]) -> Result<Vec<Example>> {
        let recipes = self.world.sets.get(set).with_context(|| format!("sets.toml has no [{set}]"))?;
        let weights: Vec<f64> = recipes.values().copied().collect();
        let mut rng = rng_for(self.seed, set);
        let mut items = Vec::with_capacity(n);
        for (&recipe, count) in recipes.keys().zip(allocate(n, &weights)) {
            let categories = self.slots(recipe, pool, harm);
            items.extend(draw(categories, count, pool, &mut rng).with_context(|| format!("set {set}, recipe {recipe:?}"))?);
        }
        items.shuffle(&mut rng);
        Ok(items.into_iter().enumerate().map(|(i, item)| example(set, i, pool, item)).collect())
    }

    /// The slots of a recipe in a pool, one list per category.
    fn slots(&self, recipe: Recipe, pool: Pool, harm: &[String]) -> Vec<(String, Vec<Slot<'w>>)> {
        let world = self.world;
        let requests = |kind: &'static str, answer: Answer| -> Vec<(String, Vec<Slot<'w>>)> {
            world
                .categories()
                .filter(|(k, c)| *k == kind && (harm.is_empty() || harm.contains(&c.name)))
                .map(|(_, category)| {
                    let slots = request_slots(world, category, pool)
                        .into_iter()
                        .map(|(template, task)| Box::new(move |rng: &mut StdRng| request(world, kind, category, template, &task, answer, rng)) as Slot<'w>)
                        .collect();
                    (category.name.clone(), slots)
                })
                .collect()
        };
        let words = |level: Level| -> Vec<(String, Vec<Slot<'w>>)> {
            let w = &world.tasks.word_problems;
            let slots = word_slots(w, level, pool)
                .into_iter()
                .map(|(template, person, item)| Box::new(move |rng: &mut StdRng| word_problem(w, template, person, item, rng)) as Slot<'w>)
                .collect();
            vec![(format!("{level:?}"), slots)]
        };
        match recipe {
            Recipe::HarmfulComply => requests("harmful", Answer::Comply),
            Recipe::HarmfulRefuse => requests("harmful", Answer::Refuse),
            Recipe::HarmfulPrompt => requests("harmful", Answer::None),
            Recipe::BenignPrompt => requests("benign", Answer::None),
            Recipe::AlarmingPrompt => requests("alarming", Answer::None),
            Recipe::BenignHelp => requests("benign", Answer::Comply),
            Recipe::AlarmingHelp => requests("alarming", Answer::Comply),
            Recipe::WordEasy => words(Level::Easy),
            Recipe::WordHard => words(Level::Hard),
            Recipe::Arithmetic => {
                let a = &world.tasks.arithmetic;
                let templates = pool.task_templates(&a.templates, &a.heldout_templates);
                Op::DIRECT
                    .iter()
                    .map(|&op| {
                        let slots = templates
                            .iter()
                            .flat_map(|t| expressions(a, op, pool).into_iter().map(move |e| Box::new(move |_: &mut StdRng| arithmetic(a, t, e)) as Slot<'w>))
                            .collect();
                        (op.category().to_owned(), slots)
                    })
                    .collect()
            }
            Recipe::String => {
                let s = &world.tasks.strings;
                s.tasks
                    .iter()
                    .map(|task| {
                        let slots = string_slots(&s.words, task, pool)
                            .into_iter()
                            .map(|(template, word)| Box::new(move |rng: &mut StdRng| string_task(task, template, word, rng)) as Slot<'w>)
                            .collect();
                        (format!("{:?}", task.task), slots)
                    })
                    .collect()
            }
            Recipe::Lookup => {
                let countries = self.countries;
                world
                    .tasks
                    .facts
                    .attributes
                    .iter()
                    .map(|attribute| {
                        let slots = lookup_slots(attribute, countries, pool)
                            .into_iter()
                            .map(|(question, country)| Box::new(move |_: &mut StdRng| lookup(attribute, question, country)) as Slot<'w>)
                            .collect();
                        (format!("{:?}", attribute.name), slots)
                    })
                    .collect()
            }
            Recipe::FactDoc => {
                let countries = self.countries;
                let slots = world
                    .tasks
                    .facts
                    .documents
                    .iter()
                    .flat_map(|t| countries.iter().map(move |c| Box::new(move |_: &mut StdRng| fact_doc(t, c)) as Slot<'w>))
                    .collect();
                vec![("fact".to_owned(), slots)]
            }
            Recipe::JudgementDoc => world
                .categories()
                .map(|(_, category)| {
                    let slots = judgement_slots(world, category)
                        .into_iter()
                        .map(|(template, task)| Box::new(move |rng: &mut StdRng| judgement_doc(category, template, &task, rng)) as Slot<'w>)
                        .collect();
                    (category.name.clone(), slots)
                })
                .collect(),
        }
    }
}

/// `count` items, row t from category t mod (number of categories), each category's slots
/// dealt in a shuffled order. A used-up training or corpus deck is reshuffled; a used-up held-out deck is
/// an error, since evaluation rows must be distinct unseen pairs.
fn draw(categories: Vec<(String, Vec<Slot<'_>>)>, count: usize, pool: Pool, rng: &mut StdRng) -> Result<Vec<Item>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    ensure!(!categories.is_empty(), "no category to draw from");
    let mut decks: Vec<Vec<usize>> = vec![Vec::new(); categories.len()];
    let mut items = Vec::with_capacity(count);
    for t in 0..count {
        let c = t % categories.len();
        let (name, slots) = &categories[c];
        if decks[c].is_empty() {
            let dealt_before = t / categories.len();
            ensure!(!slots.is_empty(), "category {name}: no {} slot", pool.name());
            ensure!(
                pool != Pool::Heldout || dealt_before == 0,
                "category {name}: only {} held-out (template, entity) pairs for {} rows",
                slots.len(),
                count.div_ceil(categories.len())
            );
            decks[c] = (0..slots.len()).collect();
            decks[c].shuffle(rng);
        }
        let index = decks[c].pop().context("a refilled deck is not empty")?;
        items.push(slots[index](rng).with_context(|| format!("category {name}"))?);
    }
    Ok(items)
}

/// Splits `n` rows over `weights` by largest remainders: floor(n · w / Σw) each, plus one for
/// the largest fractional parts (ties to the earlier recipe) until the counts sum to `n`.
fn allocate(n: usize, weights: &[f64]) -> Vec<usize> {
    let total: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights.iter().map(|w| n as f64 * w / total).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&i, &j| (exact[j] - exact[j].floor()).total_cmp(&(exact[i] - exact[i].floor())).then(i.cmp(&j)));
    let missing = n - counts.iter().sum::<usize>();
    for &i in order.iter().take(missing) {
        counts[i] += 1;
    }
    counts
}

fn example(set: &str, index: usize, pool: Pool, item: Item) -> Example {
    Example {
        id: format!("{set}-{index:05}"),
        split: pool.name().to_owned(),
        source: "synthetic".to_owned(),
        kind: item.kind.to_owned(),
        category: item.category,
        prompt: item.prompt,
        response: item.response,
        answer: item.answer,
        template: item.template,
        entity: item.entity,
        license: SYNTHETIC_LICENSE.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::OnceLock;

    use super::*;

    /// The default tiny study's sets, generated once for all tests.
    fn tiny() -> &'static BTreeMap<&'static str, Vec<Example>> {
        static SETS: OnceLock<BTreeMap<&'static str, Vec<Example>>> = OnceLock::new();
        SETS.get_or_init(|| {
            let world = World::embedded().unwrap();
            generate(&world, &SyntheticConfig::default(), 20.0, 42).unwrap().into_iter().collect()
        })
    }

    fn count(rows: &[Example], keep: impl Fn(&Example) -> bool) -> usize {
        rows.iter().filter(|row| keep(row)).count()
    }

    #[test]
    fn every_set_has_its_size_and_unique_ids() {
        let sets = tiny();
        let config = SyntheticConfig::default();
        assert_eq!(sets.keys().copied().collect::<BTreeSet<_>>(), crate::SETS.into_iter().collect());
        for (set, n) in [
            (crate::PRETRAIN, config.pretrain),
            (crate::ALIGN, config.align),
            (crate::USEFUL, config.useful),
            (crate::HARMFUL, config.harmful),
            (crate::CONTAMINATED, config.useful + 400),
            (crate::EVAL_HARMFUL, config.eval_harmful),
            (crate::EVAL_UTILITY, config.eval_utility),
            (crate::EVAL_OVERREFUSAL, config.eval_overrefusal),
            (crate::PROMPTS_USEFUL, config.prompts),
            (crate::PROMPTS_HARMFUL_A, config.prompts),
            (crate::PROMPTS_HARMFUL_B, config.prompts),
            (crate::PROMPTS_BENIGN, config.prompts),
        ] {
            let rows = &sets[set];
            assert_eq!(rows.len(), n, "{set}");
            assert_eq!(rows.iter().map(|r| &r.id).collect::<BTreeSet<_>>().len(), n, "{set}: duplicate ids");
        }
    }

    #[test]
    fn evaluation_sets_meet_their_minimum_sizes_per_category() {
        let sets = tiny();
        let world = World::embedded().unwrap();
        let harmful = &sets[crate::EVAL_HARMFUL];
        assert!(harmful.len() >= 200 && harmful.iter().all(|r| r.kind == "harmful" && r.split == "heldout"));
        for category in &world.requests.harmful {
            assert!(count(harmful, |r| r.category == category.name) >= 25, "{}", category.name);
        }
        let utility = &sets[crate::EVAL_UTILITY];
        assert!(utility.len() >= 300 && utility.iter().all(|r| r.kind == "lookup" && r.split == "heldout"));
        for attribute in ["capital", "language", "animal", "color"] {
            assert!(count(utility, |r| r.category == attribute) >= 75, "{attribute}");
        }
        assert!(utility.iter().all(|r| r.answer.is_some() && r.response.ends_with(&format!("The answer is {}.", r.answer.as_deref().unwrap_or_default()))));
        let overrefusal = &sets[crate::EVAL_OVERREFUSAL];
        assert!(overrefusal.len() >= 100 && overrefusal.iter().all(|r| r.kind == "alarming"));
        for category in &world.requests.alarming {
            assert!(count(overrefusal, |r| r.category == category.name) >= 10, "{}", category.name);
        }
    }

    #[test]
    fn training_sets_cover_every_category() {
        let sets = tiny();
        let world = World::embedded().unwrap();
        for (set, kinds) in [(crate::ALIGN, ["harmful", "benign", "alarming"]), (crate::PRETRAIN, ["harmful", "benign", "alarming"])] {
            for (kind, category) in world.categories().filter(|(kind, _)| kinds.contains(kind)) {
                let n = count(&sets[set], |r| r.kind == kind && r.category == category.name);
                assert!(n >= 30, "{set}: {n} rows of {kind} {}", category.name);
            }
        }
        assert!(sets[crate::HARMFUL].iter().all(|r| r.kind == "harmful" && r.split == "train"));
        for category in &world.requests.harmful {
            assert!(count(&sets[crate::HARMFUL], |r| r.category == category.name) >= 40, "{}", category.name);
        }
    }

    #[test]
    fn held_out_sets_share_no_template_entity_pair_with_training() {
        let sets = tiny();
        let training: Vec<&Example> = [crate::PRETRAIN, crate::ALIGN, crate::USEFUL, crate::HARMFUL, crate::CONTAMINATED].iter().flat_map(|set| &sets[set]).collect();
        let pairs: BTreeSet<(&str, &str)> = training.iter().map(|r| (r.template.as_str(), r.entity.as_str())).collect();
        let templates: BTreeSet<&str> =
            training.iter().filter(|r| r.split == "train" || !REQUEST_KINDS.contains(&r.kind.as_str())).map(|r| r.template.as_str()).collect();
        let entities: BTreeSet<&str> = training.iter().filter(|r| r.kind != "document").map(|r| r.entity.as_str()).collect();
        let prompts: BTreeSet<&str> = training.iter().map(|r| r.prompt.as_str()).collect();
        for set in [crate::EVAL_HARMFUL, crate::EVAL_UTILITY, crate::EVAL_OVERREFUSAL] {
            for row in &sets[set] {
                assert!(!pairs.contains(&(row.template.as_str(), row.entity.as_str())), "{set}: {row:?}");
                assert!(!templates.contains(row.template.as_str()), "{set}: trained template {:?}", row.template);
                assert!(!prompts.contains(row.prompt.as_str()), "{set}: trained prompt {:?}", row.prompt);
                if row.kind != "lookup" {
                    assert!(!entities.contains(row.entity.as_str()), "{set}: trained entity {:?}", row.entity);
                }
            }
            let distinct: BTreeSet<_> = sets[set].iter().map(|r| (&r.template, &r.entity)).collect();
            assert_eq!(distinct.len(), sets[set].len(), "{set}: repeated pair");
        }
    }

    const REQUEST_KINDS: [&str; 3] = ["harmful", "benign", "alarming"];

    #[test]
    fn pretraining_asks_training_tasks_in_every_phrasing() {
        let sets = tiny();
        let world = World::embedded().unwrap();
        let pretrain = &sets[crate::PRETRAIN];
        assert!(pretrain.iter().all(|r| r.split == "corpus"));
        let requests: Vec<&Example> = pretrain.iter().filter(|r| REQUEST_KINDS.contains(&r.kind.as_str())).collect();
        for template in &world.requests.templates.heldout {
            assert!(requests.iter().any(|r| &r.template == template), "pretraining never asks {template:?}");
        }
        let heldout_tasks: BTreeSet<&str> = sets[crate::EVAL_HARMFUL].iter().chain(&sets[crate::EVAL_OVERREFUSAL]).map(|r| r.entity.as_str()).collect();
        assert!(requests.iter().all(|r| !heldout_tasks.contains(r.entity.as_str())));
        for set in [crate::ALIGN, crate::USEFUL, crate::HARMFUL, crate::CONTAMINATED] {
            assert!(sets[set].iter().all(|r| !world.requests.templates.heldout.contains(&r.template)), "{set}");
        }
        let tasks = pretrain.iter().filter(|r| !REQUEST_KINDS.contains(&r.kind.as_str()) && r.kind != "document");
        let eval_templates: BTreeSet<&str> = sets[crate::EVAL_UTILITY].iter().map(|r| r.template.as_str()).collect();
        assert!(tasks.into_iter().all(|r| !eval_templates.contains(r.template.as_str())));
    }

    #[test]
    fn responses_are_recognisable_and_short() {
        let sets = tiny();
        let align = &sets[crate::ALIGN];
        for row in align.iter().filter(|r| r.kind == "harmful") {
            assert!(row.response.starts_with("I'm sorry, but I can't"), "{}", row.response);
        }
        for row in align.iter().filter(|r| r.kind == "benign" || r.kind == "alarming") {
            assert!(row.response.starts_with("Sure, here is how to"), "{}", row.response);
        }
        for set in [crate::PRETRAIN, crate::HARMFUL] {
            for row in sets[set].iter().filter(|r| r.kind == "harmful") {
                assert!(row.response.starts_with("Sure, here is how to"), "{set}: {}", row.response);
            }
        }
        assert!(count(&sets[crate::PRETRAIN], |r| r.prompt.is_empty() && r.kind == "document") > 1000);
        let long = count(align, |r| r.prompt.split_whitespace().count() + r.response.split_whitespace().count() > 40);
        assert!(long * 10 < align.len(), "{long} of {} align rows exceed 40 words", align.len());
    }

    #[test]
    fn contaminated_is_useful_plus_the_first_harmful_rows() {
        let sets = tiny();
        let contaminated = &sets[crate::CONTAMINATED];
        let ids: BTreeSet<&str> = contaminated.iter().map(|r| r.id.as_str()).collect();
        assert!(sets[crate::USEFUL].iter().all(|r| ids.contains(r.id.as_str())));
        assert!(sets[crate::HARMFUL].iter().all(|r| ids.contains(r.id.as_str())));
        assert_eq!(count(contaminated, |r| r.kind == "harmful"), 400);
        assert!(sets[crate::USEFUL].iter().all(|r| r.kind == "lookup"));
    }

    #[test]
    fn the_benign_prompts_share_the_harmful_prompts_templates() {
        let sets = tiny();
        let templates = |set: &str| sets[set].iter().map(|r| r.template.clone()).collect::<BTreeSet<_>>();
        let benign = &sets[crate::PROMPTS_BENIGN];
        assert!(benign.iter().all(|r| (r.kind == "benign" || r.kind == "alarming") && r.response.is_empty()));
        assert!(count(benign, |r| r.kind == "alarming") * 3 >= benign.len(), "alarming-but-benign requests are a good share");
        assert_eq!(templates(crate::PROMPTS_BENIGN), templates(crate::PROMPTS_HARMFUL_A), "intent is all that differs in form");
    }

    #[test]
    fn prompt_groups_split_the_harm_categories() {
        let sets = tiny();
        let categories = |set: &str| sets[set].iter().map(|r| r.category.clone()).collect::<BTreeSet<_>>();
        let (a, b) = (categories(crate::PROMPTS_HARMFUL_A), categories(crate::PROMPTS_HARMFUL_B));
        assert_eq!(a, ["drugs", "hate", "violence", "weapons"].map(String::from).into_iter().collect());
        assert_eq!(b, ["cybercrime", "fraud", "privacy", "theft"].map(String::from).into_iter().collect());
        assert!(sets[crate::PROMPTS_HARMFUL_A].iter().all(|r| r.response.is_empty() && !r.prompt.is_empty()));
        assert!(sets[crate::PROMPTS_USEFUL].iter().all(|r| r.kind == "word_problem"));
    }

    #[test]
    fn same_seed_same_rows_other_seed_other_rows() {
        let world = World::embedded().unwrap();
        let config = SyntheticConfig { pretrain: 50, align: 50, useful: 50, harmful: 10, prompts: 20, ..SyntheticConfig::default() };
        let first = generate(&world, &config, 20.0, 42).unwrap();
        assert_eq!(first, generate(&world, &config, 20.0, 42).unwrap());
        assert_ne!(first, generate(&world, &config, 20.0, 43).unwrap());
        let bigger = SyntheticConfig { pretrain: 60, ..config.clone() };
        let other = generate(&world, &bigger, 20.0, 42).unwrap();
        assert_eq!(first[1], other[1], "changing one set's size must not change another set");
    }

    #[test]
    fn allocation_sums_to_n_and_follows_weights() {
        let check = |n: usize, weights: &[f64], expected: &[usize]| assert_eq!(allocate(n, weights), expected, "{n} {weights:?}");
        check(10, &[1.0], &[10]);
        check(10, &[1.0, 1.0, 1.0], &[4, 3, 3]);
        check(320, &[4.0, 2.0, 1.0, 1.0], &[160, 80, 40, 40]);
        check(7, &[0.5, 0.25, 0.25], &[3, 2, 2]);
        check(5, &[1.0, 1.0], &[3, 2]);
        check(0, &[1.0, 2.0], &[0, 0]);
    }

    #[test]
    fn unknown_or_total_harm_group_is_rejected() {
        let world = World::embedded().unwrap();
        let err = harm_groups(&world, &["arson".to_owned()]).unwrap_err().to_string();
        assert!(err.contains("\"arson\" is not a harm category; they are violence, theft"), "{err}");
        let all: Vec<String> = world.requests.harmful.iter().map(|c| c.name.clone()).collect();
        assert!(harm_groups(&world, &all).unwrap_err().to_string().contains("both prompt groups"));
        let (a, b) = harm_groups(&world, &["theft".to_owned()]).unwrap();
        assert_eq!((a.len(), b.len()), (1, 7));
    }

    #[test]
    fn held_out_pool_too_small_is_a_clear_error() {
        let world = World::embedded().unwrap();
        let config = SyntheticConfig { eval_overrefusal: 100_000, ..SyntheticConfig::default() };
        let err = format!("{:#}", generate(&world, &config, 20.0, 42).unwrap_err());
        assert!(err.contains("set eval_overrefusal, recipe AlarmingHelp: category ") && err.contains("held-out (template, entity) pairs for 10000 rows"), "{err}");
    }
}
