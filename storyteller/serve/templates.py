"""A chat rendered as the raw prompt a completion engine continues, with the model's own chat
template and tokenizer (read from its directory): for engines whose chat route cannot continue
a message (llama.cpp's llama-server, `transformers serve`), the gateway sends this prompt to
their /v1/completions instead.

Continuing the final assistant message (vLLM's `continue_final_message`) means rendering the
chat without the end-of-turn the template writes after that message. Templates differ in what
they put there (`<|im_end|>\\n`, `</s>`, `<|eot_id|>`, nothing), so the cut is found, not
assumed: the message is rendered with a sentinel appended to its text, and the prompt is
everything before the sentinel."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping, Sequence

# Text no story and no template contains.
SENTINEL = "\u2063\u2063storyteller-continue-here\u2063\u2063"


class TemplateError(ValueError):
    """The chat cannot be rendered for continuation; the message says why."""


@lru_cache(maxsize=8)
def tokenizer_of(path: str):
    """The model's tokenizer (with its chat template), loaded once per model directory."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def render(tokenizer, messages: Sequence[Mapping[str, Any]], *, continue_final: bool) -> str:
    """The prompt for `messages`: continuing the last (assistant) message where
    `continue_final`, else opening a new assistant turn (add_generation_prompt)."""
    messages = [{"role": m["role"], "content": content_text(m.get("content"))} for m in messages]
    if not continue_final:
        return strip_bos(tokenizer, tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True))
    if not messages or messages[-1]["role"] != "assistant":
        raise TemplateError("the last message must be the assistant's to be continued")
    marked = messages[:-1] + [{"role": "assistant",
                               "content": messages[-1]["content"] + SENTINEL}]
    text = tokenizer.apply_chat_template(marked, tokenize=False, add_generation_prompt=False)
    if text.count(SENTINEL) != 1:
        raise TemplateError("the model's chat template does not write the assistant's message "
                            "as given, so it cannot be continued")
    return strip_bos(tokenizer, text[:text.index(SENTINEL)])


def content_text(content: Any) -> str:
    """A message's text: a string as it is, a list of `{type: text, text}` parts joined."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content
                       if isinstance(part, dict) and part.get("type") == "text")
    return content or ""


def strip_bos(tokenizer, prompt: str) -> str:
    """The prompt without a leading BOS text where tokenizing adds the BOS token itself (the
    engines tokenize a raw prompt that way; two BOS tokens change what the model writes)."""
    bos = tokenizer.bos_token
    if bos and prompt.startswith(bos) and adds_bos(tokenizer):
        return prompt[len(bos):]
    return prompt


def adds_bos(tokenizer) -> bool:
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id
