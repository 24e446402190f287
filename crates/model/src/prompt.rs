//! Prompt formats: how an instruction becomes the text a model continues, and how a training
//! example (instruction and response) becomes token ids with the prompt part marked.

use std::str::FromStr;

use anyhow::{bail, Context, Result};

use crate::chat::Message;
use crate::Tokenizer;

/// Marks the start of the instruction in [`PromptFormat::Instruction`].
pub const INSTRUCTION_MARKER: &str = "### Instruction:";
/// Marks the start of the response in [`PromptFormat::Instruction`].
pub const RESPONSE_MARKER: &str = "### Response:";

/// How an instruction is presented to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptFormat {
    /// `### Instruction:` / `### Response:` blocks, the study's default (METHOD.md); generation
    /// stops at either marker.
    Instruction,
    /// The model's own chat template, one user turn plus the assistant header.
    Chat,
    /// The instruction as it is.
    Plain,
}

impl FromStr for PromptFormat {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<PromptFormat> {
        Ok(match s {
            "instruction" => PromptFormat::Instruction,
            "chat" => PromptFormat::Chat,
            "plain" => PromptFormat::Plain,
            _ => bail!("unknown prompt format `{s}`: expected instruction, chat or plain"),
        })
    }
}

/// A training example as token ids: the prompt, then the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub ids: Vec<u32>,
    /// How many leading ids are prompt (no loss on them).
    pub prompt_len: usize,
}

impl PromptFormat {
    /// The name pipelines write for it (see [`entangle_pipeline::PromptFormat::name`]).
    pub fn name(self) -> &'static str {
        let named = match self {
            PromptFormat::Instruction => entangle_pipeline::PromptFormat::Instruction,
            PromptFormat::Chat => entangle_pipeline::PromptFormat::Chat,
            PromptFormat::Plain => entangle_pipeline::PromptFormat::Plain,
        };
        named.name()
    }

    /// The text the model continues to answer `instruction`.
    pub fn render(self, tokenizer: &Tokenizer, instruction: &str) -> Result<String> {
        match self {
            PromptFormat::Instruction => Ok(format!("{INSTRUCTION_MARKER}\n{instruction}\n\n{RESPONSE_MARKER}\n")),
            PromptFormat::Chat => tokenizer.apply_chat_template(&[Message::new("user", instruction)], true),
            PromptFormat::Plain => Ok(instruction.to_owned()),
        }
    }

    /// Token ids of the prompt for `instruction`. Instruction and plain prompts get the
    /// tokenizer's special tokens (e.g. BOS); a chat template writes its own, so they are not
    /// added again — as transformers' `apply_chat_template(tokenize=True)` does.
    pub fn encode(self, tokenizer: &Tokenizer, instruction: &str) -> Result<Vec<u32>> {
        tokenizer.encode(&self.render(tokenizer, instruction)?, self != PromptFormat::Chat)
    }

    /// Strings that end a response: the markers of the instruction format, none otherwise.
    pub fn stop_strings(self) -> Vec<String> {
        match self {
            PromptFormat::Instruction => vec![INSTRUCTION_MARKER.to_owned(), RESPONSE_MARKER.to_owned()],
            PromptFormat::Chat | PromptFormat::Plain => Vec::new(),
        }
    }

    /// A training example: the prompt of `instruction` followed by `response`. Instruction and
    /// plain examples end with the tokenizer's EOS token; a chat example is the template's
    /// rendering of the user and assistant turns, whose prompt part must be a prefix of it.
    pub fn encode_example(self, tokenizer: &Tokenizer, instruction: &str, response: &str) -> Result<Example> {
        let prompt = self.encode(tokenizer, instruction)?;
        let ids = match self {
            PromptFormat::Chat => {
                let turns = [Message::new("user", instruction), Message::new("assistant", response)];
                let ids = tokenizer.encode(&tokenizer.apply_chat_template(&turns, false)?, false)?;
                if !ids.starts_with(&prompt) {
                    bail!("the chat template renders the prompt differently once a response follows; cannot mask the prompt");
                }
                ids
            }
            PromptFormat::Instruction | PromptFormat::Plain => {
                let eos =
                    tokenizer.special_id("eos_token").context("the tokenizer has no EOS token to end the response")?;
                let mut ids = prompt.clone();
                ids.extend(tokenizer.encode(response, false)?);
                ids.push(eos);
                ids
            }
        };
        Ok(Example { ids, prompt_len: prompt.len() })
    }
}

impl From<entangle_pipeline::PromptFormat> for PromptFormat {
    /// The runtime format a pipeline's `[prompt] format` names.
    fn from(format: entangle_pipeline::PromptFormat) -> PromptFormat {
        match format {
            entangle_pipeline::PromptFormat::Instruction => PromptFormat::Instruction,
            entangle_pipeline::PromptFormat::Chat => PromptFormat::Chat,
            entangle_pipeline::PromptFormat::Plain => PromptFormat::Plain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> Tokenizer {
        Tokenizer::from_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tokenizer")).unwrap()
    }

    #[test]
    fn formats_render_the_instruction() {
        let tok = tokenizer();
        let check = |format: PromptFormat, want: &str| assert_eq!(format.render(&tok, "Add 2 and 3.").unwrap(), want);
        check(PromptFormat::Instruction, "### Instruction:\nAdd 2 and 3.\n\n### Response:\n");
        check(PromptFormat::Plain, "Add 2 and 3.");
        check(
            PromptFormat::Chat,
            "<s><|system|>You are a helpful assistant.<|end|>\n<|user|>Add 2 and 3.<|end|>\n<|assistant|>",
        );
        assert_eq!(PromptFormat::Instruction.stop_strings(), ["### Instruction:", "### Response:"]);
        assert!(PromptFormat::Chat.stop_strings().is_empty());
    }

    #[test]
    fn bos_is_added_once() {
        let tok = tokenizer();
        for format in [PromptFormat::Instruction, PromptFormat::Chat, PromptFormat::Plain] {
            let ids = format.encode(&tok, "Hi").unwrap();
            assert_eq!(ids.iter().filter(|&&id| id == 0).count(), 1, "{format:?}");
            assert_eq!(ids[0], 0, "{format:?}");
        }
    }

    #[test]
    fn examples_mark_the_prompt_and_end_with_eos() {
        let tok = tokenizer();
        let instruction = PromptFormat::Instruction.encode_example(&tok, "Add 2 and 3.", "5").unwrap();
        let prompt = PromptFormat::Instruction.encode(&tok, "Add 2 and 3.").unwrap();
        assert_eq!(instruction.prompt_len, prompt.len());
        assert_eq!(&instruction.ids[..prompt.len()], prompt.as_slice());
        assert_eq!(tok.decode(&instruction.ids[prompt.len()..], false).unwrap(), "5</s>");
        let chat = PromptFormat::Chat.encode_example(&tok, "Add 2 and 3.", "5").unwrap();
        assert_eq!(tok.decode(&chat.ids[chat.prompt_len..], false).unwrap(), "5<|end|></s>\n");
    }

    #[test]
    fn names_parse_back() {
        for format in [PromptFormat::Instruction, PromptFormat::Chat, PromptFormat::Plain] {
            assert_eq!(format.name().parse::<PromptFormat>().unwrap(), format);
        }
        let err = "alpaca".parse::<PromptFormat>().unwrap_err();
        assert_eq!(err.to_string(), "unknown prompt format `alpaca`: expected instruction, chat or plain");
    }
}
