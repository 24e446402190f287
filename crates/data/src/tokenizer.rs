//! The tiny study's tokenizer: a byte-level BPE trained on the synthetic corpus, saved as
//! `tokenizer.json` and `tokenizer_config.json` in `<run>/tokenizer/` for the trainer to copy
//! into every model it writes.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Result};
use entangle_artifacts::{replace_dir_atomic, write_atomic};
use entangle_model::{INSTRUCTION_MARKER, RESPONSE_MARKER};
use entangle_pipeline::TokenizerConfig;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

pub const PAD_TOKEN: &str = "<|pad|>";
pub const BOS_TOKEN: &str = "<|bos|>";
pub const EOS_TOKEN: &str = "<|eos|>";
/// Open and close a turn of the chat template.
pub const IM_START: &str = "<|im_start|>";
pub const IM_END: &str = "<|im_end|>";
/// The special tokens, with ids 0, 1, 2, … in this order.
pub const SPECIAL_TOKENS: [&str; 5] = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, IM_START, IM_END];

/// A ChatML-like template in the Jinja that transformers renders: the BOS token, then each
/// message as `<|im_start|>role\ncontent<|im_end|>\n`, then the assistant header on request.
/// An assistant turn ends with `<|im_end|>`; the instruction and plain formats end a response
/// with the EOS token.
pub const CHAT_TEMPLATE: &str = "{{ bos_token }}{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// The markers of the model runtime's instruction format, which wraps every prompt in training
/// and evaluation: the tokenizer learns them as a few tokens.
const INSTRUCTION_MARKERS: [&str; 2] = [INSTRUCTION_MARKER, RESPONSE_MARKER];


/// A byte-level BPE with `config.vocab_size` tokens trained on `texts` (and the instruction
/// markers, once per text). Digits are split one per token, so numbers tokenize uniformly;
/// encoding adds the BOS token in front, as Llama tokenizers do.
pub fn train_tokenizer(texts: &[&str], config: &TokenizerConfig) -> Result<Tokenizer> {
    let specials: Vec<AddedToken> = SPECIAL_TOKENS.iter().map(|t| AddedToken::from(*t, true)).collect();
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(config.vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![Digits::new(true).into(), ByteLevel::new(false, true, true).into()])));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let corpus = texts.iter().flat_map(|text| std::iter::once(*text).chain(INSTRUCTION_MARKERS));
    tokenizer.train(&mut trainer, corpus).map_err(|e| anyhow!("training the tokenizer: {e}"))?;
    let bos = tokenizer.token_to_id(BOS_TOKEN).ok_or_else(|| anyhow!("the trained tokenizer lacks {BOS_TOKEN}"))?;
    let post = TemplateProcessing::builder()
        .try_single(format!("{BOS_TOKEN} $A"))
        .and_then(|b| b.try_pair(format!("{BOS_TOKEN} $A {BOS_TOKEN} $B")))
        .map_err(|e| anyhow!("building the BOS template: {e}"))?
        .special_tokens(vec![(BOS_TOKEN, bos)])
        .build()
        .map_err(|e| anyhow!("building the BOS template: {e}"))?;
    tokenizer.with_post_processor(Some(post));
    Ok(tokenizer)
}

/// The `tokenizer_config.json` that transformers (and entangle-model) read next to
/// `tokenizer.json`.
pub fn tokenizer_config(config: &TokenizerConfig) -> serde_json::Value {
    serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "pad_token": PAD_TOKEN,
        "model_max_length": config.model_max_length,
        "clean_up_tokenization_spaces": false,
        "chat_template": CHAT_TEMPLATE,
    })
}

/// Replaces `dir` with `tokenizer.json` and `tokenizer_config.json`, all or nothing.
pub fn write_tokenizer(dir: &Path, tokenizer: &Tokenizer, config: &TokenizerConfig) -> Result<()> {
    let json = tokenizer.to_string(true).map_err(|e| anyhow!("serialising the tokenizer: {e}"))?;
    let config_json = serde_json::to_string_pretty(&tokenizer_config(config))?;
    replace_dir_atomic(dir, |tmp| {
        write_atomic(&tmp.join("tokenizer.json"), |w| Ok(w.write_all(json.as_bytes())?))?;
        write_atomic(&tmp.join("tokenizer_config.json"), |w| Ok(w.write_all(config_json.as_bytes())?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXTS: [&str; 4] = [
        "How do I bake bread? Sure, here is how to bake bread: first, make a plan.",
        "What is 17 plus 25? 17 + 25 = 42. The answer is 42.",
        "I'm sorry, but I can't help with that. Violence can seriously hurt people.",
        "Velorland is a small country. Its capital is Brask, and people there speak Tovish.",
    ];

    fn trained() -> Tokenizer {
        train_tokenizer(&TEXTS, &TokenizerConfig { vocab_size: 400, model_max_length: 64 }).unwrap()
    }

    #[test]
    fn specials_come_first_and_bos_is_added() {
        let tokenizer = trained();
        for (id, token) in SPECIAL_TOKENS.iter().enumerate() {
            assert_eq!(tokenizer.token_to_id(token), Some(id as u32), "{token}");
        }
        let ids = tokenizer.encode("Hi", true).unwrap().get_ids().to_vec();
        assert_eq!(ids[0], 1);
        assert!(tokenizer.encode("Hi", false).unwrap().get_ids()[0] != 1);
    }

    #[test]
    fn round_trips_text_and_splits_digits() {
        let tokenizer = trained();
        for text in TEXTS.iter().copied().chain(["  odd  spacing\n\ttabs é ü 日本 🙂", ""]) {
            let ids = tokenizer.encode(text, true).unwrap().get_ids().to_vec();
            assert_eq!(tokenizer.decode(&ids, true).unwrap(), text);
        }
        let digits = tokenizer.encode("2025", false).unwrap();
        assert_eq!(digits.get_tokens(), ["2", "0", "2", "5"]);
    }

    #[test]
    fn written_files_load_back_with_config() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("tokenizer");
        let config = TokenizerConfig { vocab_size: 400, model_max_length: 64 };
        write_tokenizer(&target, &trained(), &config).unwrap();
        let loaded = Tokenizer::from_file(target.join("tokenizer.json")).unwrap();
        assert_eq!(loaded.encode(TEXTS[1], true).unwrap().get_ids(), trained().encode(TEXTS[1], true).unwrap().get_ids());
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(target.join("tokenizer_config.json")).unwrap()).unwrap();
        assert_eq!(json["eos_token"], EOS_TOKEN);
        assert_eq!(json["model_max_length"], 64);
        assert!(json["chat_template"].as_str().unwrap().contains("add_generation_prompt"));
    }
}
