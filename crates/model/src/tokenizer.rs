//! Tokenizers of Hugging Face model directories: `tokenizer.json` through the `tokenizers`
//! crate, special tokens and the chat template from `tokenizer_config.json`, and the token ids
//! that end a generation.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::chat::{ChatTemplate, Message};

/// The special tokens transformers passes to chat templates, by their config names.
const SPECIAL_TOKENS: &[&str] =
    &["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"];

/// A model's tokenizer with its special tokens and chat template.
#[derive(Debug)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Text of each special token by config name (`bos_token`, `eos_token`, …).
    pub special_tokens: BTreeMap<String, String>,
    chat_template: Option<ChatTemplate>,
    eos_token_ids: Vec<u32>,
    pad_token_id: u32,
}

impl Tokenizer {
    /// Loads the tokenizer of model directory `dir`: `tokenizer.json` (required), special
    /// tokens from `tokenizer_config.json` or `special_tokens_map.json`, the chat template from
    /// `chat_template.jinja` or `tokenizer_config.json`, and the end-of-sequence ids from the
    /// tokenizer's EOS token plus `eos_token_id` of `generation_config.json` (or `config.json`).
    pub fn from_dir(dir: &Path) -> Result<Tokenizer> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            bail!("{}: no tokenizer.json (a fast tokenizer file is required)", dir.display());
        }
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| anyhow!("{}: cannot load the tokenizer: {e}", path.display()))?;
        let config = read_json(&dir.join("tokenizer_config.json"))?;
        let map = read_json(&dir.join("special_tokens_map.json"))?;
        let special_tokens = special_tokens(&config, &map);
        let chat_template = chat_template_source(dir, &config)?
            .map(|source| ChatTemplate::new(&source, special_tokens.clone()))
            .transpose()
            .with_context(|| format!("{}: loading the chat template", dir.display()))?;
        let mut tokenizer =
            Tokenizer { inner, special_tokens, chat_template, eos_token_ids: Vec::new(), pad_token_id: 0 };
        tokenizer.eos_token_ids = tokenizer.eos_ids(dir)?;
        tokenizer.pad_token_id =
            tokenizer.special_id("pad_token").or_else(|| tokenizer.eos_token_ids.first().copied()).unwrap_or(0);
        Ok(tokenizer)
    }

    /// Token ids of `text`; `add_special_tokens` adds what the tokenizer's post-processor adds
    /// (e.g. BOS), as transformers' `tokenizer(text)` does.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let encoding = self.inner.encode(text, add_special_tokens).map_err(|e| anyhow!("tokenizing: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`; `skip_special_tokens` leaves out BOS, EOS and other special tokens.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner.decode(ids, skip_special_tokens).map_err(|e| anyhow!("decoding token ids: {e}"))
    }

    /// The id of special token `name` (e.g. `bos_token`), if defined and in the vocabulary.
    pub fn special_id(&self, name: &str) -> Option<u32> {
        self.special_tokens.get(name).and_then(|text| self.inner.token_to_id(text))
    }

    /// Ids that end a generation.
    pub fn eos_token_ids(&self) -> &[u32] {
        &self.eos_token_ids
    }

    /// The id used to pad batches: the pad token, else the first EOS id, else 0.
    pub fn pad_token_id(&self) -> u32 {
        self.pad_token_id
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// `apply_chat_template(messages, add_generation_prompt=…, tokenize=False)`; an error when
    /// the tokenizer has no chat template.
    pub fn apply_chat_template(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.chat_template
            .as_ref()
            .context("the tokenizer has no chat template")?
            .render(messages, add_generation_prompt)
    }

    fn eos_ids(&self, dir: &Path) -> Result<Vec<u32>> {
        let mut ids: Vec<u32> = self.special_id("eos_token").into_iter().collect();
        let generation = read_json(&dir.join("generation_config.json"))?;
        let generation =
            if generation.get("eos_token_id").is_some() { generation } else { read_json(&dir.join("config.json"))? };
        match generation.get("eos_token_id") {
            Some(Value::Number(n)) => ids.extend(n.as_u64().map(|id| id as u32)),
            Some(Value::Array(list)) => ids.extend(list.iter().filter_map(Value::as_u64).map(|id| id as u32)),
            _ => {}
        }
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(*id));
        Ok(ids)
    }
}

/// The parsed JSON file at `path`, or an empty object when there is none.
fn read_json(path: &Path) -> Result<Value> {
    if !path.exists() {
        return Ok(Value::Object(Default::default()));
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

/// Special token texts from the tokenizer config, falling back to the special tokens map; an
/// entry is a string or an added-token object with a `content` field.
fn special_tokens(config: &Value, map: &Value) -> BTreeMap<String, String> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    SPECIAL_TOKENS
        .iter()
        .filter_map(|name| {
            let value = config.get(*name).and_then(text).or_else(|| map.get(*name).and_then(text))?;
            Some(((*name).to_owned(), value))
        })
        .collect()
}

/// The chat template: `chat_template.jinja` when present (transformers 5 saves it there),
/// else `chat_template` of the tokenizer config, a string or a list of named templates of
/// which `default` is used.
fn chat_template_source(dir: &Path, config: &Value) -> Result<Option<String>> {
    let file = dir.join("chat_template.jinja");
    if file.exists() {
        return Ok(Some(std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?));
    }
    Ok(match config.get("chat_template") {
        Some(Value::String(source)) => Some(source.clone()),
        Some(Value::Array(named)) => named
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|t| t.get("template"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::path::PathBuf;

    pub(crate) fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tokenizer")
    }

    /// What transformers did with the fixture tokenizer (written by
    /// crates/llama/fixtures/make_fixtures.py).
    #[derive(Deserialize)]
    struct Expected {
        templates: BTreeMap<String, String>,
        encodings: Vec<Encoded>,
        chat: Vec<ChatCase>,
        vocab_size: usize,
        special_ids: BTreeMap<String, u32>,
    }

    #[derive(Deserialize)]
    struct Encoded {
        text: String,
        ids: Vec<u32>,
        ids_without_special: Vec<u32>,
        decoded: String,
        decoded_with_special: String,
    }

    #[derive(Deserialize)]
    struct ChatCase {
        template: String,
        messages: Vec<Message>,
        add_generation_prompt: bool,
        text: Option<String>,
        ids: Option<Vec<u32>>,
        error: Option<String>,
    }

    fn expected() -> Expected {
        serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap()).unwrap()
    }

    #[test]
    fn encodes_and_decodes_like_transformers() {
        let tokenizer = Tokenizer::from_dir(&fixture()).unwrap();
        for case in expected().encodings {
            assert_eq!(tokenizer.encode(&case.text, true).unwrap(), case.ids, "{:?}", case.text);
            assert_eq!(tokenizer.encode(&case.text, false).unwrap(), case.ids_without_special, "{:?}", case.text);
            assert_eq!(tokenizer.decode(&case.ids, true).unwrap(), case.decoded, "{:?}", case.text);
            assert_eq!(tokenizer.decode(&case.ids, false).unwrap(), case.decoded_with_special, "{:?}", case.text);
        }
    }

    #[test]
    fn chat_templates_render_like_transformers() {
        let tokenizer = Tokenizer::from_dir(&fixture()).unwrap();
        let expected = expected();
        for case in &expected.chat {
            let rendered = match expected.templates.get(&case.template) {
                None => tokenizer.apply_chat_template(&case.messages, case.add_generation_prompt),
                Some(source) => ChatTemplate::new(source, tokenizer.special_tokens.clone())
                    .and_then(|t| t.render(&case.messages, case.add_generation_prompt)),
            };
            let what = format!("{} {:?} {}", case.template, case.messages, case.add_generation_prompt);
            match (&rendered, &case.text, &case.error) {
                (Ok(text), Some(want), _) => {
                    assert_eq!(text, want, "{what}");
                    if let Some(ids) = &case.ids {
                        assert_eq!(&tokenizer.encode(text, false).unwrap(), ids, "{what}");
                    }
                }
                (Err(err), None, Some(message)) => {
                    let err = format!("{err:#}");
                    assert!(err.ends_with(&format!("the template raised: {message}")), "{what}: {err}");
                }
                _ => panic!("{what}: got {rendered:?}, expected {:?} / {:?}", case.text, case.error),
            }
        }
    }

    #[test]
    fn special_tokens_come_from_the_config() {
        let tokenizer = Tokenizer::from_dir(&fixture()).unwrap();
        let expected = expected();
        assert_eq!(tokenizer.vocab_size(), expected.vocab_size);
        for (name, id) in &expected.special_ids {
            assert_eq!(tokenizer.special_id(name), Some(*id), "{name}");
        }
        assert_eq!(tokenizer.special_tokens["bos_token"], "<s>");
        assert_eq!(tokenizer.eos_token_ids(), [1]);
        assert_eq!(tokenizer.pad_token_id(), 2);
    }

    /// A copy of the fixture with `edit` applied, in a temporary directory.
    fn edited(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for name in ["tokenizer.json", "tokenizer_config.json"] {
            std::fs::copy(fixture().join(name), dir.path().join(name)).unwrap();
        }
        edit(dir.path());
        dir
    }

    #[test]
    fn eos_ids_add_the_generation_config() {
        let dir =
            edited(|d| std::fs::write(d.join("generation_config.json"), r#"{"eos_token_id": [5, 1, 6]}"#).unwrap());
        assert_eq!(Tokenizer::from_dir(dir.path()).unwrap().eos_token_ids(), [1, 5, 6]);
        let dir = edited(|d| std::fs::write(d.join("config.json"), r#"{"eos_token_id": 7}"#).unwrap());
        assert_eq!(Tokenizer::from_dir(dir.path()).unwrap().eos_token_ids(), [1, 7]);
    }

    #[test]
    fn chat_template_file_takes_precedence() {
        let dir = edited(|d| std::fs::write(d.join("chat_template.jinja"), "{{ messages[0].content }}!").unwrap());
        let tokenizer = Tokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(tokenizer.apply_chat_template(&[Message::new("user", "hi")], true).unwrap(), "hi!");
    }

    #[test]
    fn named_templates_use_the_default_one() {
        let dir = edited(|d| {
            let config = serde_json::json!({"eos_token": "</s>", "chat_template": [
                {"name": "tool_use", "template": "tools"}, {"name": "default", "template": "plain {{ eos_token }}"}]});
            std::fs::write(d.join("tokenizer_config.json"), config.to_string()).unwrap();
        });
        let tokenizer = Tokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(tokenizer.apply_chat_template(&[], false).unwrap(), "plain </s>");
    }

    #[test]
    fn missing_pieces_are_one_clear_error() {
        let empty = tempfile::tempdir().unwrap();
        let err = format!("{:#}", Tokenizer::from_dir(empty.path()).unwrap_err());
        assert_eq!(err, format!("{}: no tokenizer.json (a fast tokenizer file is required)", empty.path().display()));
        let dir = edited(|d| std::fs::write(d.join("tokenizer_config.json"), "{}").unwrap());
        let err = Tokenizer::from_dir(dir.path()).unwrap().apply_chat_template(&[], true).unwrap_err();
        assert_eq!(format!("{err:#}"), "the tokenizer has no chat template");
        let dir = edited(|d| std::fs::write(d.join("tokenizer.json"), "{").unwrap());
        let err = format!("{:#}", Tokenizer::from_dir(dir.path()).unwrap_err());
        assert!(err.contains("cannot load the tokenizer") && !err.contains('\n'), "{err}");
    }
}
