//! Batched generation: left-padded prompts, a key/value cache, greedy or seeded
//! temperature/top-p sampling, and stopping at EOS, stop strings or a token budget.

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use tch::{Kind, Tensor};

use crate::{position_ids, Batch, CausalLm, ForwardInput, Logits, PromptFormat, Tokenizer};

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most likely token.
    Greedy,
    /// A draw from the softmax of logits / `temperature`, restricted to the smallest set of
    /// most likely tokens whose probability reaches `top_p`. Prompt `i` of a call draws from
    /// its own random stream seeded by (`seed`, `i`), so a result does not depend on batching.
    TopP { temperature: f64, top_p: f64, seed: u64 },
}

/// What [`generate`] does.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// A response ends where one of these first appears; the text is cut before it.
    pub stop_strings: Vec<String>,
    /// Token ids that end a response (kept as its last token, left out of its text).
    pub eos_token_ids: Vec<u32>,
    /// Prompts run together; longer prompts are batched together.
    pub batch_size: usize,
}

impl GenerateOptions {
    /// Greedy decoding of up to `max_new_tokens`, batches of 8, stopping at `tokenizer`'s EOS
    /// ids and nothing else.
    pub fn greedy(max_new_tokens: usize, tokenizer: &Tokenizer) -> GenerateOptions {
        GenerateOptions {
            max_new_tokens,
            sampling: Sampling::Greedy,
            stop_strings: Vec::new(),
            eos_token_ids: tokenizer.eos_token_ids().to_vec(),
            batch_size: 8,
        }
    }

    /// Greedy decoding as the stages run it on prompts rendered in `format`: up to
    /// `max_new_tokens`, `batch_size` prompts together, stopping at the tokenizer's EOS ids and
    /// the format's stop strings.
    pub fn greedy_in(format: PromptFormat, max_new_tokens: usize, batch_size: usize, tokenizer: &Tokenizer) -> GenerateOptions {
        GenerateOptions { stop_strings: format.stop_strings(), batch_size, ..GenerateOptions::greedy(max_new_tokens, tokenizer) }
    }
}

/// Why a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Eos,
    StopString,
    MaxNewTokens,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Eos => "eos",
            StopReason::StopString => "stop_string",
            StopReason::MaxNewTokens => "max_new_tokens",
        }
    }
}

/// One response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// The decoded response without special tokens, cut before the first stop string.
    pub text: String,
    /// Every generated token, including a final EOS.
    pub token_ids: Vec<u32>,
    pub stop_reason: StopReason,
}

/// Continues each prompt (token ids) with `model`, in batches, and returns the responses in
/// prompt order. `progress` advances by one per finished prompt.
pub fn generate(
    model: &dyn CausalLm,
    tokenizer: &Tokenizer,
    prompts: &[Vec<u32>],
    options: &GenerateOptions,
    progress: &ProgressBar,
) -> Result<Vec<Generation>> {
    validate(options)?;
    let _no_grad = tch::no_grad_guard();
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(prompts[i].len()));
    let mut results: Vec<Option<Generation>> = vec![None; prompts.len()];
    for chunk in order.chunks(options.batch_size) {
        let generations = generate_batch(model, tokenizer, prompts, chunk, options)?;
        for (&i, generation) in chunk.iter().zip(generations) {
            results[i] = Some(generation);
        }
        progress.inc(chunk.len() as u64);
    }
    Ok(results.into_iter().flatten().collect())
}

fn validate(options: &GenerateOptions) -> Result<()> {
    if options.batch_size == 0 {
        bail!("the generation batch size must be at least 1");
    }
    if let Sampling::TopP { temperature, top_p, .. } = options.sampling {
        if temperature.is_nan() || temperature <= 0.0 {
            bail!("the sampling temperature must be positive, got {temperature}");
        }
        if top_p.is_nan() || top_p <= 0.0 || top_p > 1.0 {
            bail!("top_p must be in (0, 1], got {top_p}");
        }
    }
    Ok(())
}

/// A sequence being generated.
struct Row {
    tokens: Vec<u32>,
    rng: SplitMix64,
    stop: Option<StopReason>,
}

/// Generates for `prompts[i]` for each `i` of `indices`, as one batch.
fn generate_batch(
    model: &dyn CausalLm,
    tokenizer: &Tokenizer,
    prompts: &[Vec<u32>],
    indices: &[usize],
    options: &GenerateOptions,
) -> Result<Vec<Generation>> {
    let seed = match options.sampling {
        Sampling::TopP { seed, .. } => seed,
        Sampling::Greedy => 0,
    };
    let mut rows: Vec<Row> = indices
        .iter()
        .map(|&i| Row { tokens: Vec::new(), rng: SplitMix64::for_stream(seed, i as u64), stop: None })
        .collect();
    if options.max_new_tokens > 0 {
        decode_loop(model, tokenizer, prompts, indices, options, &mut rows)?;
    }
    rows.into_iter().map(|row| finish(tokenizer, row, options)).collect()
}

fn decode_loop(
    model: &dyn CausalLm,
    tokenizer: &Tokenizer,
    prompts: &[Vec<u32>],
    indices: &[usize],
    options: &GenerateOptions,
    rows: &mut [Row],
) -> Result<()> {
    let device = model.device();
    let sequences: Vec<Vec<u32>> = indices.iter().map(|&i| prompts[i].clone()).collect();
    let batch = Batch::left_padded(&sequences, tokenizer.pad_token_id(), device)?;
    let mut cache = model.new_cache();
    cache.reserve(batch.input_ids.size()[1] + options.max_new_tokens as i64);
    let mut mask = batch.attention_mask.shallow_clone();
    let mut logits = model.forward(&batch.input(Logits::Last, false), Some(&mut cache))?.logits;
    // Batch row j holds rows[active[j]].
    let mut active: Vec<usize> = (0..rows.len()).collect();
    let stop_window = stop_window(&options.stop_strings);
    for step in 0..options.max_new_tokens {
        let next = next_tokens(&logits.f_select(1, -1)?, options.sampling, rows, &active)?;
        for (&r, &token) in active.iter().zip(&next) {
            let row = &mut rows[r];
            row.tokens.push(token as u32);
            row.stop = stop_reason(tokenizer, row, options, stop_window, step + 1)?;
        }
        let keep: Vec<i64> = (0..active.len() as i64).filter(|&j| rows[active[j as usize]].stop.is_none()).collect();
        if keep.is_empty() {
            break;
        }
        let mut next = Tensor::from_slice(&next).f_to_device(device)?;
        if keep.len() < active.len() {
            let keep_t = Tensor::from_slice(&keep).f_to_device(device)?;
            cache.retain_rows(&keep_t)?;
            mask = mask.f_index_select(0, &keep_t)?;
            next = next.f_index_select(0, &keep_t)?;
            active = keep.iter().map(|&j| active[j as usize]).collect();
        }
        let ones = Tensor::f_ones([active.len() as i64, 1], (Kind::Int64, device))?;
        mask = Tensor::f_cat(&[&mask, &ones], 1)?;
        let input_ids = next.f_unsqueeze(1)?;
        let positions = position_ids(&mask, 1)?;
        let input = ForwardInput {
            input_ids: &input_ids,
            attention_mask: Some(&mask),
            position_ids: Some(&positions),
            logits: Logits::Last,
            hidden_states: false,
        };
        logits = model.forward(&input, Some(&mut cache))?.logits;
    }
    Ok(())
}

/// How many trailing tokens to decode to see whether a stop string has just appeared: a
/// stop string of n bytes spans at most n tokens, plus one token that may end before it.
fn stop_window(stop_strings: &[String]) -> usize {
    stop_strings.iter().map(String::len).max().map_or(0, |n| n + 1)
}

/// Why `row` ends after its latest token, if it does.
fn stop_reason(
    tokenizer: &Tokenizer,
    row: &Row,
    options: &GenerateOptions,
    window: usize,
    generated: usize,
) -> Result<Option<StopReason>> {
    let last = row.tokens.last().copied();
    if last.is_some_and(|t| options.eos_token_ids.contains(&t)) {
        return Ok(Some(StopReason::Eos));
    }
    if window > 0 {
        let tail = &row.tokens[row.tokens.len().saturating_sub(window)..];
        let text = tokenizer.decode(tail, true)?;
        if options.stop_strings.iter().any(|s| text.contains(s.as_str())) {
            return Ok(Some(StopReason::StopString));
        }
    }
    Ok((generated == options.max_new_tokens).then_some(StopReason::MaxNewTokens))
}

fn finish(tokenizer: &Tokenizer, row: Row, options: &GenerateOptions) -> Result<Generation> {
    let mut text = tokenizer.decode(&row.tokens, true)?;
    if let Some(cut) = options.stop_strings.iter().filter_map(|s| text.find(s.as_str())).min() {
        text.truncate(cut);
    }
    let stop_reason = row.stop.unwrap_or(StopReason::MaxNewTokens);
    Ok(Generation { text, token_ids: row.tokens, stop_reason })
}

/// The next token of each active row from its logits (`[active, vocab]`).
fn next_tokens(logits: &Tensor, sampling: Sampling, rows: &mut [Row], active: &[usize]) -> Result<Vec<i64>> {
    let chosen = match sampling {
        Sampling::Greedy => logits.f_argmax(-1, false)?,
        Sampling::TopP { temperature, top_p, .. } => {
            let uniforms: Vec<f32> = active.iter().map(|&r| rows[r].rng.uniform() as f32).collect();
            let uniforms = Tensor::from_slice(&uniforms).f_to_device(logits.device())?;
            sample_top_p(logits, temperature, top_p, &uniforms)?
        }
    };
    Vec::<i64>::try_from(chosen.f_to_device(tch::Device::Cpu)?).context("reading the chosen tokens")
}

/// Inverse-CDF sampling with one uniform number in [0, 1) per row from the renormalised
/// nucleus of softmax(logits / temperature).
fn sample_top_p(logits: &Tensor, temperature: f64, top_p: f64, uniforms: &Tensor) -> Result<Tensor> {
    let probs = logits.f_to_kind(Kind::Float)?.f_div_scalar(temperature)?.f_softmax(-1, Kind::Float)?;
    let (sorted, order) = probs.f_sort(-1, true)?;
    let before = sorted.f_cumsum(-1, Kind::Float)?.f_sub(&sorted)?;
    let kept = sorted.f_mul(&before.f_lt(top_p)?)?;
    let cdf = kept.f_cumsum(-1, Kind::Float)?;
    let total = cdf.f_select(-1, -1)?;
    let targets = uniforms.f_mul(&total)?.f_unsqueeze(1)?;
    let vocab = logits.size()[1];
    let position = targets.f_searchsorted(&cdf, false, true, "right", None::<Tensor>)?.f_clamp_max(vocab - 1)?;
    Ok(order.f_gather(-1, &position, false)?.f_squeeze_dim(1)?)
}

/// SplitMix64 (Steele, Lea and Flood 2014): a small, well-mixed generator, one stream per
/// prompt.
struct SplitMix64(u64);

impl SplitMix64 {
    fn for_stream(seed: u64, stream: u64) -> SplitMix64 {
        let mut mixer = SplitMix64(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        SplitMix64(mixer.next_u64())
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws from `probs` (one row) with each uniform in `uniforms`.
    fn draws(probs: &[f64], top_p: f64, uniforms: &[f32]) -> Vec<i64> {
        let logits = Tensor::from_slice(probs).log().view([1, -1]).repeat([uniforms.len() as i64, 1]);
        let u = Tensor::from_slice(uniforms);
        Vec::<i64>::try_from(sample_top_p(&logits, 1.0, top_p, &u).unwrap()).unwrap()
    }

    #[test]
    fn top_p_sampling_inverts_the_nucleus_cdf() {
        let probs = [0.1, 0.5, 0.3, 0.1];
        // Sorted: token 1 (0.5), 2 (0.3), 0 (0.1), 3 (0.1); full CDF 0.5, 0.8, 0.9, 1.0.
        assert_eq!(draws(&probs, 1.0, &[0.0, 0.49, 0.51, 0.79, 0.85, 0.999]), [1, 1, 2, 2, 0, 3]);
        // top_p 0.6 keeps tokens 1 and 2 (0.5 < 0.6), renormalised to 0.625 / 0.375.
        assert_eq!(draws(&probs, 0.6, &[0.6, 0.63, 0.99]), [1, 2, 2]);
        // top_p 0.45 keeps token 1 only (not 0.5 itself: the f32 softmax may round 0.5 below).
        assert_eq!(draws(&probs, 0.45, &[0.0, 0.99]), [1, 1]);
    }

    #[test]
    fn sampling_frequencies_follow_the_distribution() {
        let probs = [0.2, 0.5, 0.3];
        let mut rng = SplitMix64::for_stream(42, 0);
        let uniforms: Vec<f32> = (0..20_000).map(|_| rng.uniform() as f32).collect();
        let tokens = draws(&probs, 1.0, &uniforms);
        for (token, p) in probs.iter().enumerate() {
            let share = tokens.iter().filter(|&&t| t == token as i64).count() as f64 / tokens.len() as f64;
            assert!((share - p).abs() < 0.015, "token {token}: {share} vs {p}");
        }
    }

    #[test]
    fn streams_are_seeded_and_distinct() {
        let draw = |seed, stream| {
            let mut rng = SplitMix64::for_stream(seed, stream);
            (0..4).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(1, 0), draw(1, 0));
        assert_ne!(draw(1, 0), draw(1, 1));
        assert_ne!(draw(1, 0), draw(2, 0));
        let mut rng = SplitMix64::for_stream(7, 3);
        assert!((0..1000).map(|_| rng.uniform()).all(|u| (0.0..1.0).contains(&u)));
    }

    #[test]
    fn bad_options_are_rejected() {
        let options = |sampling, batch_size| GenerateOptions {
            max_new_tokens: 4,
            sampling,
            stop_strings: vec![],
            eos_token_ids: vec![],
            batch_size,
        };
        let sample = |temperature, top_p| Sampling::TopP { temperature, top_p, seed: 0 };
        assert!(validate(&options(Sampling::Greedy, 1)).is_ok());
        assert!(validate(&options(sample(0.7, 0.9), 1)).is_ok());
        assert!(validate(&options(Sampling::Greedy, 0)).is_err());
        assert!(validate(&options(sample(0.0, 0.9), 1)).is_err());
        assert!(validate(&options(sample(1.0, 0.0), 1)).is_err());
        assert!(validate(&options(sample(1.0, 1.5), 1)).is_err());
    }

    #[test]
    fn stop_window_covers_the_longest_stop_string() {
        assert_eq!(stop_window(&[]), 0);
        assert_eq!(stop_window(&["ab".into(), "### Response:".into()]), 14);
    }
}
