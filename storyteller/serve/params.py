"""The request parameters the gateway takes, checked one by one.

Every parameter OpenAI's chat and completions APIs define is accepted (docs/API.md lists what
each engine does with it): passed on where the engine honours it, dropped where ignoring it
changes nothing a story needs (`user`, `store`, `metadata`, `service_tier` …), and refused
with a 400 naming it where the value is invalid or this engine cannot honour it (`tools`: a
story has none; `logprobs` on transformers serve, which computes none). Pure functions: the
gateway does the I/O; how each engine is then sent them is storyteller.serve.engine_params.
"""

from __future__ import annotations

import json
import math
from typing import Any

ROLES = ("system", "user", "assistant")
# `developer` is OpenAI's newer name for the system message.
ROLE_ALIASES = {"developer": "system"}
MAX_N = 4
MAX_TOP_LOGPROBS = 5
MAX_LOGIT_BIAS = 1024
MAX_BANNED = 500
MAX_BANNED_CHARS = 100

# Dropped before the engine sees them: nothing about the story depends on them.
IGNORED = {"user", "store", "metadata", "service_tier", "parallel_tool_calls",
           "safety_identifier", "prompt_cache_key", "prompt_cache_retention",
           "prompt_cache_options", "verbosity", "reasoning_effort", "prediction"}
# Asked for, but a story endpoint cannot give them (None / empty counts as not asked).
REFUSED = {
    "tools": "a story has no tools to call", "functions": "a story has no functions to call",
    "tool_choice": "a story has no tools to call",
    "function_call": "a story has no functions to call",
    "audio": "stories are text only", "web_search_options": "stories are not searched for",
    "moderation": "the endpoint runs no moderation", "suffix": "stories are continued at the "
    "end only (send the text so far as the prompt)",
}
# Sent as they are to every engine (translated where the engine names them otherwise).
COMMON = {"model", "stream", "max_tokens", "temperature", "top_p", "seed", "stop", "n",
          "frequency_penalty", "presence_penalty", "logit_bias", "stream_options", "logprobs",
          "response_format"}
EXTRAS = {"top_k", "min_p", "repetition_penalty"}
# storyteller's own request fields, handled by storyteller.serve.steering.
STEERING = {"banned", "continue_final_message"}
CHAT_ONLY = {"messages", "max_completion_tokens", "top_logprobs", "modalities",
             "continue_final_message"}
COMPLETION_ONLY = {"prompt", "echo", "best_of"}


class ApiError(Exception):
    """An OpenAI-style error response."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.code = status, message, param, kind, code

    def payload(self) -> dict:
        """The error as OpenAI sends it: the body of a response, or an event of a stream."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.code}}

    def response(self):
        from starlette.responses import JSONResponse

        return JSONResponse(self.payload(), status_code=self.status)


ENGINE_TITLES = {"vllm": "vLLM", "llama.cpp": "llama.cpp", "transformers": "transformers serve"}


def refused_here(name: str, engine_kind: str, what: str) -> ApiError:
    """A 400 for a parameter this engine cannot honour, saying which engines can."""
    return ApiError(400, f"{name}: {ENGINE_TITLES.get(engine_kind, engine_kind)} cannot {what}; "
                         "serve the model with llama.cpp (CPU) or vLLM (GPU) for it", name)


def _number(body: dict, name: str, low: float, high: float, *, low_open: bool = False,
            integer: bool = False) -> None:
    if name not in body or body[name] is None:
        return
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (integer and not float(value).is_integer()) or not math.isfinite(float(value)):
        raise ApiError(400, f"{name} must be {'an integer' if integer else 'a number'}, "
                            f"not {json.dumps(value)}", name)
    if value < low or value > high or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise ApiError(400, f"{name} must be in {bracket}{low}, {high}], not {value}", name)


def message_text(content: Any, where: str) -> str:
    """A message's content as one string: a string, or a list of `{type: text, text}` parts
    joined (OpenAI's other part types, images and audio, a story cannot use)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ApiError(400, f"{where} must be a string or a list of {{type: text, text}} parts",
                       where)
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text" or \
                not isinstance(part.get("text"), str):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise ApiError(400, f"{where}[{j}] must be a {{type: text, text}} part, not "
                                f"{kind!r}: stories take text only", f"{where}[{j}]")
        texts.append(part["text"])
    return "".join(texts)


def _messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list of {role, content}", "messages")
    clean = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        role = ROLE_ALIASES.get(role, role)
        if role not in ROLES:
            raise ApiError(400, f"messages[{i}].role must be one of {', '.join(ROLES)} (or "
                                f"developer); a story has no tool messages", f"messages[{i}].role")
        if message.get("tool_calls"):
            raise ApiError(400, f"messages[{i}].tool_calls: a story has no tools to call",
                           f"messages[{i}].tool_calls")
        # `name` and the like are dropped: the chat template renders role and content only.
        clean.append({"role": role,
                      "content": message_text(message.get("content"), f"messages[{i}].content")})
    return clean


def _prompt(body: dict, engine_kind: str) -> str | list[int]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]  # one prompt in a list (OpenAI allows a batch; stories come one by one)
    if isinstance(prompt, str) and prompt:
        return prompt
    if isinstance(prompt, list) and prompt and all(
            isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in prompt):
        if engine_kind == "transformers":
            raise refused_here("prompt", engine_kind, "take a prompt as token ids (send text)")
        return prompt
    raise ApiError(400, "prompt must be a non-empty string (or one list of token ids); for "
                        "several stories from one prompt use n", "prompt")


def _banned(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ApiError(400, "banned must be a list of words or phrases (strings)", "banned")
    if len(value) > MAX_BANNED:
        raise ApiError(400, f"banned holds {len(value)} entries; at most {MAX_BANNED}", "banned")
    clean = []
    for i, phrase in enumerate(value):
        phrase = " ".join(phrase.split())
        if not phrase:
            raise ApiError(400, f"banned[{i}] is empty", f"banned[{i}]")
        if len(phrase) > MAX_BANNED_CHARS:
            raise ApiError(400, f"banned[{i}] is {len(phrase)} characters; at most "
                                f"{MAX_BANNED_CHARS}", f"banned[{i}]")
        clean.append(phrase)
    return list(dict.fromkeys(clean))


def _logit_bias(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ApiError(400, "logit_bias must be a map of token id (a string) to a bias in "
                            "[-100, 100]", "logit_bias")
    if len(value) > MAX_LOGIT_BIAS:
        raise ApiError(400, f"logit_bias holds {len(value)} tokens; at most {MAX_LOGIT_BIAS}",
                       "logit_bias")
    for key, bias in value.items():
        if not str(key).isdigit():
            raise ApiError(400, f"logit_bias keys are token ids (digits), not {key!r}",
                           "logit_bias")
        _number({f"logit_bias[{key}]": bias}, f"logit_bias[{key}]", -100, 100)
    return {str(int(k)): v for k, v in value.items()}


def validate(body: Any, route: str, models: dict, engine_kind: str = "vllm") -> tuple[dict, Any]:
    """The request body checked parameter by parameter, with ignored keys dropped, messages
    made plain strings and defaults for OpenAI's nulls; the ServedModel it asks for.
    `engine_kind` is the engine that would run it: a parameter only some engines honour is
    refused on the others."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    allowed = COMMON | EXTRAS | STEERING | IGNORED | set(REFUSED) | \
        (CHAT_ONLY if route == "chat" else COMPLETION_ONLY)
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"unsupported parameter(s): {', '.join(unknown)}; this endpoint "
                            f"takes {', '.join(sorted(allowed - IGNORED - set(REFUSED)))}",
                       unknown[0])
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "model is required: one of " + ", ".join(models), "model")
    if name not in models:
        raise ApiError(404, f"model {name!r} is not served here; served: {', '.join(models)}",
                       "model", code="model_not_found")
    model = models[name]
    # OpenAI's null means "the default": the same as leaving the key out.
    out = {k: v for k, v in body.items() if v is not None and k not in IGNORED}
    for key in sorted(set(out) & set(REFUSED)):
        if out[key] in ([], {}, "none", False, "") and key in ("tools", "functions", "tool_choice",
                                                                "function_call", "suffix"):
            del out[key]  # no tools, "none": nothing asked
            continue
        raise ApiError(400, f"{key} is not supported: {REFUSED[key]}", key)
    if route == "chat":
        out["messages"] = _messages(out)
        if out.get("modalities", ["text"]) != ["text"]:
            raise ApiError(400, "modalities must be [\"text\"]: stories are text only",
                           "modalities")
        out.pop("modalities", None)
    else:
        out["prompt"] = _prompt(out, engine_kind)
        if out.get("echo"):
            raise ApiError(400, "echo is not supported: the prompt is yours already", "echo")
        out.pop("echo", None)
        _number(out, "best_of", 1, MAX_N, integer=True)
        if out.get("best_of", 1) > out.get("n", 1):
            raise ApiError(400, "best_of above n is not supported: ask for n stories and "
                                "choose", "best_of")
        out.pop("best_of", None)
    for key in ("max_tokens", "max_completion_tokens"):
        _number(out, key, 1, model.max_model_len, integer=True)
    _number(out, "temperature", 0, 2)
    _number(out, "top_p", 0, 1, low_open=True)
    _number(out, "top_k", -1, 1_000_000, integer=True)
    _number(out, "min_p", 0, 1)
    _number(out, "repetition_penalty", 0, 10, low_open=True)
    _number(out, "seed", -2**63, 2**63 - 1, integer=True)
    _number(out, "frequency_penalty", -2, 2)
    _number(out, "presence_penalty", -2, 2)
    _number(out, "n", 1, 1_000_000, integer=True)
    if out.get("n", 1) > MAX_N:
        raise ApiError(400, f"n must be at most {MAX_N} (stories to choose from), not "
                            f"{out['n']}", "n")
    if "stream" in out and not isinstance(out["stream"], bool):
        raise ApiError(400, "stream must be true or false", "stream")
    _stream_options(out)
    stop = out.get("stop")
    if stop is not None and not (isinstance(stop, str) or (
            isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop))):
        raise ApiError(400, "stop must be a string or a list of up to 4 strings", "stop")
    _logprobs(out, route)
    if "logit_bias" in out:
        out["logit_bias"] = _logit_bias(out["logit_bias"])
    _response_format(out, engine_kind)
    _engine_limits(out, engine_kind)
    if "banned" in out:
        out["banned"] = _banned(out["banned"])
        if not out["banned"]:
            del out["banned"]
    if "continue_final_message" in out:
        if not isinstance(out["continue_final_message"], bool):
            raise ApiError(400, "continue_final_message must be true or false",
                           "continue_final_message")
        if not out["continue_final_message"]:
            del out["continue_final_message"]
        elif out["messages"][-1]["role"] != "assistant":
            raise ApiError(400, "continue_final_message needs the last message to be the "
                                "assistant's text to continue", "continue_final_message")
    return out, model


def _stream_options(out: dict) -> None:
    options = out.get("stream_options")
    if options is None:
        return
    if not isinstance(options, dict) or set(options) - {"include_usage", "include_obfuscation"} \
            or not all(isinstance(v, bool) for v in options.values()):
        raise ApiError(400, "stream_options must be {include_usage: true|false}",
                       "stream_options")
    if out.get("stream") and options.get("include_usage"):
        out["stream_options"] = {"include_usage": True}
    else:
        # Without a stream there is nothing to add usage to; obfuscation pads nothing here.
        del out["stream_options"]


def _logprobs(out: dict, route: str) -> None:
    """chat: logprobs true|false and top_logprobs 0..5; completions: logprobs 0..5 (OpenAI's
    own limits for completions, and enough alternatives for a writer)."""
    if route == "chat":
        if "logprobs" in out and not isinstance(out["logprobs"], bool):
            raise ApiError(400, "logprobs must be true or false (top_logprobs says how many "
                                "alternatives)", "logprobs")
        _number(out, "top_logprobs", 0, MAX_TOP_LOGPROBS, integer=True)
        if "top_logprobs" in out and not out.get("logprobs"):
            raise ApiError(400, "top_logprobs needs logprobs: true", "top_logprobs")
        if not out.get("logprobs"):
            out.pop("logprobs", None)
    else:
        _number(out, "logprobs", 0, MAX_TOP_LOGPROBS, integer=True)
        if isinstance(out.get("logprobs"), bool):
            raise ApiError(400, "logprobs must be an integer 0..5 on /v1/completions",
                           "logprobs")


def _response_format(out: dict, engine_kind: str) -> None:
    fmt = out.get("response_format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise ApiError(400, "response_format must be {type: text}, {type: json_object} or "
                            "{type: json_schema, json_schema: {...}}", "response_format")
    if kind == "text":
        del out["response_format"]  # what every story is anyway
    elif engine_kind == "transformers":
        raise refused_here("response_format", engine_kind, f"constrain output to {kind}")


def _engine_limits(out: dict, engine_kind: str) -> None:
    """What transformers serve cannot do: it returns no log-probabilities, and its only
    penalty is the multiplicative repetition_penalty (it would turn frequency_penalty into
    one, which is another thing)."""
    if engine_kind != "transformers":
        return
    if out.get("logprobs"):
        raise refused_here("logprobs", engine_kind, "return log-probabilities")
    for key in ("frequency_penalty", "presence_penalty"):
        if out.get(key):
            raise refused_here(key, engine_kind, f"apply {key} (repetition_penalty it can)")
        out.pop(key, None)


def wanted_logprobs(body: dict, route: str) -> int | None:
    """How many alternatives per token the client asked for (None: no logprobs)."""
    if route == "chat":
        return body.get("top_logprobs", 0) if body.get("logprobs") else None
    return body.get("logprobs")
