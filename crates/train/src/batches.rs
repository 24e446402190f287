//! Length-grouped batching: sequences of similar length share a micro-batch, so little is
//! wasted on padding, in a seeded order.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Groups sequence indices into batches of `batch_size`, like transformers'
/// LengthGroupedSampler: a seeded shuffle, then within mega-batches of 50 batches the
/// sequences are sorted by length (longest first), so each batch holds similar lengths.
pub fn length_grouped_batches(lengths: &[usize], batch_size: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut batches = Vec::new();
    for mega in order.chunks(batch_size * 50) {
        let mut mega = mega.to_vec();
        mega.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        batches.extend(mega.chunks(batch_size).map(|b| b.to_vec()));
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_index_once_with_similar_lengths() {
        let lengths: Vec<usize> = (0..103).map(|i| (i * 37) % 50 + 1).collect();
        let batches = length_grouped_batches(&lengths, 4, 7);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..103).collect::<Vec<_>>());
        assert!(batches.iter().all(|b| b.windows(2).all(|w| lengths[w[0]] >= lengths[w[1]])));
        assert_eq!(batches, length_grouped_batches(&lengths, 4, 7));
        assert_ne!(batches, length_grouped_batches(&lengths, 4, 8));
    }
}
