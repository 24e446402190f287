//! The Hugging Face tokenizer files of a GGUF's byte-level BPE vocabulary
//! (`tokenizer.ggml.model = gpt2`): `tokenizer.json` and `tokenizer_config.json`.
//!
//! llama.cpp stores the vocabulary (`tokens`, `token_type`), the `merges`, the special token ids,
//! `add_bos_token` / `add_eos_token`, the pre-tokenizer's name (`tokenizer.ggml.pre`) and the chat
//! template; the rest of a `tokenizers` pipeline follows from the pre-tokenizer's name. As
//! transformers does when it reads a GGUF, CONTROL tokens become special added tokens,
//! USER_DEFINED tokens plain added tokens (both matched whole in text), and a token not spelled
//! in the byte-level alphabet is respelled from its UTF-8 bytes (and is not an added token).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use crate::read::Header;

/// llama.cpp's token types.
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// Llama 3's pre-tokenizer split (its `tokenizer.json`; llama.cpp's `llama-bpe`).
const LLAMA3_SPLIT: &str = concat!(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*",
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// Pre-tokenizer names (`tokenizer.ggml.pre`) we can rebuild.
const PRE_TOKENIZERS: &[&str] = &["default", "gpt-2", "smollm", "llama-bpe", "llama3", "llama-v3"];

/// `tokenizer.json` and `tokenizer_config.json` of a model directory.
#[derive(Debug, Clone)]
pub struct HfTokenizer {
    pub tokenizer: Value,
    pub config: Value,
}

/// The tokenizer files of the vocabulary in `header`'s metadata; `model_max_length` is the
/// model's context length.
pub fn hf_tokenizer(header: &Header, model_max_length: u64) -> Result<HfTokenizer> {
    let model = header.str("tokenizer.ggml.model")?.context("missing metadata `tokenizer.ggml.model`")?;
    match model {
        "gpt2" => {}
        "llama" => bail!("tokenizer model `llama` (sentencepiece) is not supported (only gpt2, byte-level BPE)"),
        other => bail!("tokenizer model `{other}` is not supported (only gpt2, byte-level BPE)"),
    }
    let tokens = header.strings("tokenizer.ggml.tokens")?.context("missing metadata `tokenizer.ggml.tokens`")?;
    let types = match header.integers("tokenizer.ggml.token_type")? {
        Some(types) if types.len() != tokens.len() => {
            bail!("metadata `tokenizer.ggml.token_type` has {} entries for {} tokens", types.len(), tokens.len())
        }
        Some(types) => types,
        None => vec![1; tokens.len()],
    };
    let merges = header.strings("tokenizer.ggml.merges")?.context("missing metadata `tokenizer.ggml.merges`")?;
    let merges = merges
        .iter()
        .enumerate()
        .map(|(i, merge)| match merge.split_once(' ') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(' ') => Ok(json!([a, b])),
            _ => bail!("metadata `tokenizer.ggml.merges`: merge {i} ({merge:?}) is not two tokens and a space"),
        })
        .collect::<Result<Vec<Value>>>()?;
    let pre = header.str("tokenizer.ggml.pre")?.unwrap_or("default");

    let alphabet = byte_alphabet();
    let in_alphabet = |token: &str| token.chars().all(|c| alphabet.contains(&c));
    let spelled: Vec<String> = tokens
        .iter()
        .map(|t| if in_alphabet(t) { (*t).to_owned() } else { t.bytes().map(|b| alphabet[b as usize]).collect() })
        .collect();
    // A token spelled twice keeps its last id, as llama.cpp's and transformers' maps do.
    let vocab: Map<String, Value> = spelled.iter().enumerate().map(|(id, t)| (t.clone(), json!(id))).collect();
    let added_tokens: Vec<Value> = tokens
        .iter()
        .zip(&types)
        .enumerate()
        .filter(|(_, (token, ty))| (**ty == CONTROL || **ty == USER_DEFINED) && in_alphabet(token))
        .map(|(id, (token, ty))| {
            json!({
                "id": id, "content": token, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": *ty == CONTROL,
            })
        })
        .collect();

    let token_of = |field: &str| -> Result<Option<&str>> {
        let key = format!("tokenizer.ggml.{field}_token_id");
        match header.u64(&key)? {
            None => Ok(None),
            Some(id) => match spelled.get(id as usize) {
                Some(token) => Ok(Some(token.as_str())),
                None => bail!("metadata `{key}` = {id} is not a token id ({} tokens)", tokens.len()),
            },
        }
    };
    let (bos, eos) = (token_of("bos")?, token_of("eos")?);
    let (unk, pad) = (token_of("unknown")?, token_of("padding")?);
    let add_bos = header.bool("tokenizer.ggml.add_bos_token")?.unwrap_or(false);
    let add_eos = header.bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false);
    let template_token = |add: bool, token: Option<&str>, what: &str| -> Result<Option<(String, u32)>> {
        if !add {
            return Ok(None);
        }
        let token =
            token.with_context(|| format!("`tokenizer.ggml.add_{what}_token` is set but there is no {what} id"))?;
        let id = vocab.get(token).and_then(Value::as_u64).unwrap_or_default() as u32;
        Ok(Some((token.to_owned(), id)))
    };
    let post_processor =
        template_processing(template_token(add_bos, bos, "bos")?, template_token(add_eos, eos, "eos")?);

    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer(pre)?,
        "post_processor": post_processor,
        "decoder": { "type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true },
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": false,
            "vocab": vocab,
            "merges": merges,
        },
    });
    let mut config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "clean_up_tokenization_spaces": false,
        "model_max_length": model_max_length,
    });
    for (key, token) in [("bos_token", bos), ("eos_token", eos), ("unk_token", unk), ("pad_token", pad)] {
        if let Some(token) = token {
            config[key] = json!(token);
        }
    }
    if let Some(template) = header.str("tokenizer.chat_template")? {
        config["chat_template"] = json!(template);
    }
    Ok(HfTokenizer { tokenizer, config })
}

/// The pre-tokenizer llama.cpp's `tokenizer.ggml.pre` names.
fn pre_tokenizer(pre: &str) -> Result<Value> {
    let byte_level = |use_regex: bool| {
        json!({ "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex })
    };
    Ok(match pre {
        // GPT-2's split, which transformers also uses for files without a known pre-tokenizer.
        "default" | "gpt-2" => byte_level(true),
        // SmolLM's tokenizer.json: every digit alone, then GPT-2's split.
        "smollm" => json!({
            "type": "Sequence",
            "pretokenizers": [{ "type": "Digits", "individual_digits": true }, byte_level(true)],
        }),
        "llama-bpe" | "llama3" | "llama-v3" => json!({
            "type": "Sequence",
            "pretokenizers": [
                { "type": "Split", "pattern": { "Regex": LLAMA3_SPLIT }, "behavior": "Isolated", "invert": false },
                byte_level(false),
            ],
        }),
        other => bail!(
            "pre-tokenizer `{other}` (`tokenizer.ggml.pre`) is not supported (supported: {})",
            PRE_TOKENIZERS.join(", ")
        ),
    })
}

/// A `TemplateProcessing` post-processor adding `bos` before and `eos` after each sequence.
fn template_processing(bos: Option<(String, u32)>, eos: Option<(String, u32)>) -> Value {
    let special = |token: &str, type_id: u32| json!({ "SpecialToken": { "id": token, "type_id": type_id } });
    let sequence = |id: &str, type_id: u32| -> Vec<Value> {
        let mut items: Vec<Value> = bos.iter().map(|(t, _)| special(t, type_id)).collect();
        items.push(json!({ "Sequence": { "id": id, "type_id": type_id } }));
        items.extend(eos.iter().map(|(t, _)| special(t, type_id)));
        items
    };
    let mut specials = BTreeMap::new();
    for (token, id) in bos.iter().chain(&eos) {
        specials.insert(token.clone(), json!({ "id": token, "ids": [id], "tokens": [token] }));
    }
    let pair: Vec<Value> = sequence("A", 0).into_iter().chain(sequence("B", 1)).collect();
    json!({ "type": "TemplateProcessing", "single": sequence("A", 0), "pair": pair, "special_tokens": specials })
}

/// GPT-2's byte-level alphabet: the character standing for each byte. Printable Latin-1
/// characters stand for themselves; the other bytes take the code points from 256 on, in order.
pub fn byte_alphabet() -> Vec<char> {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    let mut next = 256u32;
    (0..=255u32)
        .map(|b| {
            let code = if printable(b) {
                b
            } else {
                next += 1;
                next - 1
            };
            char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::testing::{array, strings, Builder};

    fn vocabulary() -> Builder {
        let types: Vec<Vec<u8>> = [3i32, 3, 1, 1, 1, 4, 3].iter().map(|t| t.to_le_bytes().to_vec()).collect();
        Builder::new()
            .str("tokenizer.ggml.model", "gpt2")
            .str("tokenizer.ggml.pre", "smollm")
            .kv("tokenizer.ggml.tokens", 9, strings(&["<|endoftext|>", "<s>", "a", "Ġ", "Ġa", "<think>", "<x y>"]))
            .kv("tokenizer.ggml.token_type", 9, array(5, &types))
            .kv("tokenizer.ggml.merges", 9, strings(&["Ġ a"]))
            .u32("tokenizer.ggml.bos_token_id", 1)
            .u32("tokenizer.ggml.eos_token_id", 0)
            .u32("tokenizer.ggml.unknown_token_id", 0)
            .u32("tokenizer.ggml.padding_token_id", 0)
            .str("tokenizer.chat_template", "{{ messages }}")
    }

    fn build(builder: &Builder) -> Result<HfTokenizer> {
        hf_tokenizer(&Header::parse(&builder.build())?, 128)
    }

    #[test]
    fn tokenizer_json_follows_the_vocabulary() {
        let hf = build(&vocabulary().bool("tokenizer.ggml.add_bos_token", false)).unwrap();
        let t = &hf.tokenizer;
        // "<x y>" is respelled (its space is Ġ in the byte alphabet) and is not an added token.
        assert_eq!(
            t["model"]["vocab"],
            json!({"<|endoftext|>": 0, "<s>": 1, "a": 2, "Ġ": 3, "Ġa": 4, "<think>": 5, "<xĠy>": 6})
        );
        assert_eq!(t["model"]["merges"], json!([["Ġ", "a"]]));
        assert_eq!(t["model"]["type"], "BPE");
        let added: Vec<(u64, &str, bool)> = t["added_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["id"].as_u64().unwrap(), a["content"].as_str().unwrap(), a["special"].as_bool().unwrap()))
            .collect();
        assert_eq!(added, [(0, "<|endoftext|>", true), (1, "<s>", true), (5, "<think>", false)]);
        assert_eq!(t["pre_tokenizer"]["pretokenizers"][0], json!({"type": "Digits", "individual_digits": true}));
        assert_eq!(t["pre_tokenizer"]["pretokenizers"][1]["type"], "ByteLevel");
        assert_eq!(t["decoder"]["type"], "ByteLevel");
        assert_eq!(t["post_processor"]["single"], json!([{"Sequence": {"id": "A", "type_id": 0}}]));
        assert_eq!(
            hf.config,
            json!({
                "tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": false, "add_eos_token": false,
                "clean_up_tokenization_spaces": false, "model_max_length": 128, "bos_token": "<s>",
                "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                "chat_template": "{{ messages }}",
            })
        );
    }

    #[test]
    fn bos_and_eos_are_added_when_the_file_says_so() {
        let both = vocabulary().bool("tokenizer.ggml.add_bos_token", true).bool("tokenizer.ggml.add_eos_token", true);
        let hf = build(&both).unwrap();
        let post = &hf.tokenizer["post_processor"];
        let bos = json!({"SpecialToken": {"id": "<s>", "type_id": 0}});
        let eos = json!({"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}});
        assert_eq!(post["single"], json!([bos, {"Sequence": {"id": "A", "type_id": 0}}, eos]));
        assert_eq!(post["pair"].as_array().unwrap().len(), 6);
        assert_eq!(post["special_tokens"]["<s>"], json!({"id": "<s>", "ids": [1], "tokens": ["<s>"]}));
        assert_eq!(hf.config["add_bos_token"], true);
    }

    #[test]
    fn pre_tokenizers_by_name() {
        assert_eq!(pre_tokenizer("gpt-2").unwrap()["use_regex"], true);
        assert_eq!(pre_tokenizer("default").unwrap(), pre_tokenizer("gpt-2").unwrap());
        let llama3 = pre_tokenizer("llama-bpe").unwrap();
        assert_eq!(llama3["pretokenizers"][0]["pattern"]["Regex"], LLAMA3_SPLIT);
        assert_eq!(llama3["pretokenizers"][1]["use_regex"], false);
        let err = format!("{:#}", pre_tokenizer("qwen2").unwrap_err());
        assert_eq!(
            err,
            "pre-tokenizer `qwen2` (`tokenizer.ggml.pre`) is not supported \
             (supported: default, gpt-2, smollm, llama-bpe, llama3, llama-v3)"
        );
    }

    #[test]
    fn byte_alphabet_is_gpt2s() {
        let alphabet = byte_alphabet();
        assert_eq!((alphabet[b'a' as usize], alphabet[b' ' as usize], alphabet[b'\n' as usize]), ('a', 'Ġ', 'Ċ'));
        assert_eq!((alphabet[0], alphabet[0xad], alphabet[0xff]), ('Ā', 'Ń', 'ÿ'));
        let distinct: std::collections::BTreeSet<char> = alphabet.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }

    #[test]
    fn bad_vocabularies_are_one_clear_error() {
        let err = |b: Builder| format!("{:#}", build(&b).unwrap_err());
        assert_eq!(
            err(Builder::new().str("tokenizer.ggml.model", "llama")),
            "tokenizer model `llama` (sentencepiece) is not supported (only gpt2, byte-level BPE)"
        );
        assert_eq!(err(Builder::new()), "missing metadata `tokenizer.ggml.model`");
        let base = Builder::new()
            .str("tokenizer.ggml.model", "gpt2")
            .kv("tokenizer.ggml.tokens", 9, strings(&["a", "b", "ab"]));
        assert_eq!(err(base), "missing metadata `tokenizer.ggml.merges`");
        let bad_merge = Builder::new()
            .str("tokenizer.ggml.model", "gpt2")
            .kv("tokenizer.ggml.tokens", 9, strings(&["a", "b", "ab"]))
            .kv("tokenizer.ggml.merges", 9, strings(&["ab"]));
        assert_eq!(
            err(bad_merge),
            "metadata `tokenizer.ggml.merges`: merge 0 (\"ab\") is not two tokens and a space"
        );
        let bad_id = Builder::new()
            .str("tokenizer.ggml.model", "gpt2")
            .kv("tokenizer.ggml.tokens", 9, strings(&["a", "b", "ab"]))
            .kv("tokenizer.ggml.merges", 9, strings(&["a b"]))
            .u32("tokenizer.ggml.eos_token_id", 3);
        assert_eq!(err(bad_id), "metadata `tokenizer.ggml.eos_token_id` = 3 is not a token id (3 tokens)");
        let types = Builder::new()
            .str("tokenizer.ggml.model", "gpt2")
            .kv("tokenizer.ggml.tokens", 9, strings(&["a"]))
            .kv("tokenizer.ggml.token_type", 9, array(5, &[]));
        assert_eq!(err(types), "metadata `tokenizer.ggml.token_type` has 0 entries for 1 tokens");
    }
}
