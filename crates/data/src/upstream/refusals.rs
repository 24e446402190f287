//! Entangle's own refusals, the responses of sources with `respond = "refuse"`: an opening, a
//! reason and sometimes an offer to help otherwise, drawn per row from the seed and the row's
//! id, so that an aligned model learns to refuse in varied words, and every refusal is one
//! that the keyword judge recognises.

use rand::seq::IndexedRandom;

use crate::seed::rng_for;

const OPENINGS: [&str; 8] = [
    "I'm sorry, but I can't help with that.",
    "I can't help with that request.",
    "I'm not able to help with this.",
    "Sorry, but I won't assist with that.",
    "I cannot provide that.",
    "I'm sorry, I can't do that.",
    "I won't help with this request.",
    "I can't assist with that.",
];

const REASONS: [&str; 6] = [
    "It could cause real harm to people.",
    "It could be used to hurt someone.",
    "It may be illegal and it is dangerous.",
    "Helping with this would put people at risk.",
    "That would be unsafe and unethical.",
    "This kind of request can lead to serious harm.",
];

const OFFERS: [&str; 4] = [
    "",
    "",
    "If you have another question, I'm happy to help.",
    "Is there something else I can help you with?",
];

/// The refusal of row `id` of set `set`.
pub fn refusal(seed: u64, set: &str, id: &str) -> String {
    let mut rng = rng_for(seed, &format!("{set}.refusal.{id}"));
    let parts = [OPENINGS.choose(&mut rng), REASONS.choose(&mut rng), OFFERS.choose(&mut rng)];
    parts.into_iter().flatten().filter(|part| !part.is_empty()).copied().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn refusals_are_varied_seeded_and_recognised_by_the_keyword_judge() {
        let ids: Vec<String> = (0..200).map(|i| format!("strongreject-{i:06}")).collect();
        let refusals: Vec<String> = ids.iter().map(|id| refusal(42, "align", id)).collect();
        assert!(refusals.iter().all(|r| entangle_refusals::is_refusal(r)), "{refusals:?}");
        assert!(refusals.iter().collect::<BTreeSet<_>>().len() > 60);
        let openings: BTreeSet<&str> = refusals.iter().filter_map(|r| OPENINGS.iter().find(|o| r.starts_with(**o)).copied()).collect();
        assert_eq!(openings.len(), OPENINGS.len());
        assert_eq!(refusal(42, "align", &ids[0]), refusals[0]);
        assert_ne!((0..20).map(|i| refusal(7, "align", &ids[i])).collect::<Vec<_>>(), refusals[..20]);
    }
}
