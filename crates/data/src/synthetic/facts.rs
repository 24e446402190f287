//! The generated fact table: invented countries with a capital, a language, a national animal
//! and a flag colour, drawn from the world's syllables and word lists with the pipeline seed.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;

use super::world::{Facts, FactField};
use super::capitalized;
use crate::seed::rng_for;

/// One row of the fact table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Country {
    pub name: String,
    pub capital: String,
    pub language: String,
    pub animal: String,
    pub color: String,
}

impl Country {
    pub fn field(&self, field: FactField) -> &str {
        match field {
            FactField::Capital => &self.capital,
            FactField::Language => &self.language,
            FactField::Animal => &self.animal,
            FactField::Color => &self.color,
        }
    }

    /// The slots of a fact document.
    pub(crate) fn slots(&self) -> [(&str, &str); 5] {
        [
            ("country", &self.name),
            ("capital", &self.capital),
            ("language", &self.language),
            ("animal", &self.animal),
            ("color", &self.color),
        ]
    }
}

/// `facts.countries` countries with distinct invented names, the same for the same seed.
pub fn fact_table(facts: &Facts, seed: u64) -> Result<Vec<Country>> {
    let mut rng = rng_for(seed, "facts");
    let mut used = BTreeSet::new();
    let mut fresh = |rng: &mut StdRng, ending: &str| -> Result<String> {
        for _ in 0..10_000 {
            let stem: String = (0..2).filter_map(|_| facts.syllables.choose(rng)).map(String::as_str).collect();
            let name = capitalized(&format!("{stem}{ending}"));
            if used.insert(name.clone()) {
                return Ok(name);
            }
        }
        bail!("tasks.toml: facts: too few syllables for {} distinct countries", facts.countries)
    };
    let mut countries = Vec::with_capacity(facts.countries);
    for _ in 0..facts.countries {
        let country_ending = facts.country_endings.choose(&mut rng).map_or("", String::as_str);
        let language_ending = facts.language_endings.choose(&mut rng).map_or("", String::as_str);
        countries.push(Country {
            name: fresh(&mut rng, country_ending)?,
            capital: fresh(&mut rng, "")?,
            language: fresh(&mut rng, language_ending)?,
            animal: facts.animals.choose(&mut rng).cloned().unwrap_or_default(),
            color: facts.colors.choose(&mut rng).cloned().unwrap_or_default(),
        });
    }
    Ok(countries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::World;

    #[test]
    fn names_are_distinct_and_follow_the_seed() {
        let world = World::embedded().unwrap();
        let facts = &world.tasks.facts;
        let table = fact_table(facts, 42).unwrap();
        assert_eq!(table.len(), facts.countries);
        let names: BTreeSet<_> = table.iter().flat_map(|c| [&c.name, &c.capital, &c.language]).collect();
        assert_eq!(names.len(), 3 * facts.countries);
        assert_eq!(fact_table(facts, 42).unwrap(), table);
        assert_ne!(fact_table(facts, 7).unwrap(), table);
        assert!(table.iter().all(|c| facts.country_endings.iter().any(|e| c.name.ends_with(e.as_str()))));
    }
}
