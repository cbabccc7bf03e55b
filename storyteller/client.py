"""`storyteller.client`: how the app, `storyteller write` and `evaluate --endpoint` talk to
an endpoint. Built on the official `openai` client, which brings timeouts, bounded retries with
exponential backoff (429, 5xx, connection errors) and streaming; this module adds storyteller's
prompt renderer and sampling presets, the served models' metadata, and errors that say what
happened in words a writer can act on."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from storyteller.errors import Problem, StorytellerError
from storyteller.prompts import SYSTEM_PROMPT, StoryRequest, render_messages
from storyteller.sampling import Sampling

DEFAULT_ENDPOINT = "http://127.0.0.1:8000"


class ClientError(StorytellerError):
    """Something went wrong talking to the endpoint; `message` is meant for people."""

    def __init__(self, message: str, hint: str = "", endpoint: str = ""):
        super().__init__(Problem(endpoint, message, hint))
        self.message, self.hint, self.endpoint = message, hint, endpoint


class EndpointUnreachable(ClientError):
    pass


class EndpointTimeout(ClientError):
    pass


class Unauthorized(ClientError):
    pass


class BadRequest(ClientError):
    pass


class ModelNotFound(ClientError):
    pass


class EndpointBusy(ClientError):
    pass


class EngineFailed(ClientError):
    pass


@dataclass(frozen=True)
class ServedModel:
    id: str
    max_model_len: int | None = None
    # The model's storyteller.json subset: genres, styles, controls, control_schema …
    storyteller: dict[str, Any] = field(default_factory=dict)

    @property
    def genres(self) -> list[str]:
        return list(self.storyteller.get("genres") or [])

    @property
    def styles(self) -> list[str]:
        return list(self.storyteller.get("styles") or [])


@dataclass(frozen=True)
class TokenChoice:
    """One token the model wrote and what it considered there: `alternatives` are
    (token, logprob) pairs, the most likely first, the written token among them when it was
    that likely (the endpoint's top_logprobs)."""
    token: str
    logprob: float
    alternatives: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # Which of the n candidates this is (0 for a single story).
    index: int = 0
    # Every token's choices, where logprobs were asked for.
    logprobs: list[TokenChoice] | None = None
    # What the endpoint's steering did (banned words biased, phrases cut …): the answer's
    # `storyteller` key, where it has one.
    steering: dict | None = None


def token_choices(logprobs: Any) -> list[TokenChoice] | None:
    """TokenChoices from a choice's `logprobs`, chat's shape ({content: [...]}) or
    completions' ({tokens, token_logprobs, top_logprobs}); None where there are none."""
    if logprobs is None:
        return None
    if not isinstance(logprobs, dict):
        logprobs = logprobs.model_dump() if hasattr(logprobs, "model_dump") else dict(logprobs)
    if logprobs.get("content") is not None:
        return [TokenChoice(e["token"], e["logprob"], _ranked(
            e["token"], e["logprob"], ((t["token"], t["logprob"]) for t in e.get("top_logprobs") or ())))
                for e in logprobs["content"]]
    if logprobs.get("tokens") is not None:
        tops = logprobs.get("top_logprobs") or [None] * len(logprobs["tokens"])
        return [TokenChoice(token, logprob, _ranked(token, logprob, (top or {}).items()))
                for token, logprob, top in zip(logprobs["tokens"], logprobs["token_logprobs"],
                                               tops)]
    return None


def _ranked(token: str, logprob: float, pairs) -> list[tuple[str, float]]:
    """The alternatives, most likely first, the written token among them even when it was
    less likely than all the top ones (sampling picks such tokens)."""
    ranked = {str(t): float(lp) for t, lp in pairs}
    ranked.setdefault(token, float(logprob))
    return sorted(ranked.items(), key=lambda p: -p[1])


def story_messages(request: StoryRequest, system_prompt: str | None = SYSTEM_PROMPT) -> list[dict]:
    """The exact messages training used for this request (storyteller.prompts)."""
    return render_messages(request, system_prompt=system_prompt)


class StoryClient:
    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, api_key: str | None = None,
                 timeout: float = 60.0, max_retries: int = 2, connect_timeout: float = 5.0):
        import openai

        self.endpoint = endpoint.rstrip("/")
        base = self.endpoint if self.endpoint.endswith("/v1") else f"{self.endpoint}/v1"
        self.root = base[:-len("/v1")]
        self.api_key = api_key
        self.timeout = timeout
        self._openai = openai.OpenAI(base_url=base, api_key=api_key or "no-key",
                                     timeout=openai.Timeout(timeout, connect=connect_timeout),
                                     max_retries=max_retries)

    # -- errors -------------------------------------------------------------------------------
    def _translate(self, error: Exception) -> ClientError:
        import openai

        where = self.endpoint
        if isinstance(error, openai.APITimeoutError):
            return EndpointTimeout(f"no answer within {self.timeout:.0f} s",
                                   "the model may be busy or the story long; try again or raise "
                                   "the timeout", where)
        if isinstance(error, openai.APIConnectionError):
            return EndpointUnreachable("cannot reach the endpoint",
                                       "is `storyteller serve` running at this address?", where)
        if isinstance(error, openai.AuthenticationError):
            return Unauthorized("the endpoint refused the API key" if self.api_key else
                                "the endpoint needs an API key",
                                "set the key the server was started with", where)
        message = _message_of(error)
        if isinstance(error, openai.NotFoundError):
            return ModelNotFound(message, "pick one of the served models", where)
        if isinstance(error, openai.RateLimitError):
            return EndpointBusy(message, "too many requests; wait a moment", where)
        if isinstance(error, (openai.BadRequestError, openai.UnprocessableEntityError)):
            return BadRequest(message, "change the named parameter", where)
        if isinstance(error, openai.APIStatusError):
            if error.status_code == 503:
                return EndpointBusy(message, "the engine is starting or overloaded; try again "
                                             "shortly", where)
            return EngineFailed(message, "see the server's output", where)
        return ClientError(str(error), "", where)

    # -- endpoint ---------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """The endpoint's /health answer; raises EndpointUnreachable when it has none."""
        try:
            with urllib.request.urlopen(f"{self.root}/health", timeout=5) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise EngineFailed(f"the endpoint is not healthy ({error.code})",
                               "the engine may still be loading", self.endpoint) from None
        except (urllib.error.URLError, OSError):
            raise EndpointUnreachable("cannot reach the endpoint",
                                      "is `storyteller serve` running at this address?",
                                      self.endpoint) from None

    def models(self) -> list[ServedModel]:
        try:
            page = self._openai.models.list()
        except Exception as error:  # openai's errors, translated
            raise self._translate(error) from None
        models = []
        for entry in page.data:
            extra = entry.model_extra or {}
            models.append(ServedModel(entry.id, extra.get("max_model_len"),
                                      extra.get("storyteller") or {}))
        return models

    # -- generation ---------------------------------------------------------------------------
    def chat(self, model: str, messages: list[dict], sampling: Sampling = Sampling(),
             **extra: Any) -> Completion:
        """One story. `extra` goes into the request body as it is: OpenAI's n, logprobs,
        top_logprobs, logit_bias, frequency_penalty …, and storyteller's banned and
        continue_final_message (docs/API.md)."""
        return self._chat(model, messages, sampling, extra)[0]

    def candidates(self, model: str, messages: list[dict], sampling: Sampling = Sampling(),
                   n: int = 2, **extra: Any) -> list[Completion]:
        """`n` stories from one request (the endpoint writes them together, or one after
        another where its engine cannot), in index order; with a seed, the same n each time."""
        return self._chat(model, messages, sampling, {**extra, "n": n})

    def _chat(self, model: str, messages: list[dict], sampling: Sampling,
              extra: Mapping[str, Any]) -> list[Completion]:
        import openai

        params = sampling.body()
        try:
            answer = self._openai.chat.completions.create(
                model=model, messages=messages, **_standard(params),
                extra_body={**_extras(params), **extra})
        except openai.OpenAIError as error:
            raise self._translate(error) from None
        usage = answer.usage
        steering = (answer.model_extra or {}).get("storyteller")
        return [Completion(choice.message.content or "", choice.finish_reason,
                           usage.prompt_tokens if usage else None,
                           usage.completion_tokens if usage else None, choice.index,
                           token_choices(choice.logprobs), steering)
                for choice in sorted(answer.choices, key=lambda c: c.index)]

    def stream(self, model: str, messages: list[dict], sampling: Sampling = Sampling(),
               **extra: Any) -> Iterator[str | Completion]:
        """Text pieces, then one final Completion holding the whole text and finish reason
        (and, with logprobs=True, every token's choices in `logprobs`). Closing the iterator
        early (a stop button) closes the connection, which stops the engine's generation.
        `extra` goes into the request body as in `chat`."""
        import openai

        params = sampling.body()
        parts: list[str] = []
        choices: list[TokenChoice] = []
        finish = steering = usage = None
        try:
            stream = self._openai.chat.completions.create(
                model=model, messages=messages, stream=True, **_standard(params),
                extra_body={**_extras(params), **extra})
            with stream:
                for chunk in stream:
                    steering = (chunk.model_extra or {}).get("storyteller") or steering
                    usage = chunk.usage or usage
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    piece = choice.delta.content if choice.delta else None
                    if piece:
                        parts.append(piece)
                        yield piece
                    choices.extend(token_choices(choice.logprobs) or ())
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except openai.OpenAIError as error:
            raise self._translate(error) from None
        yield Completion("".join(parts), finish,
                         usage.prompt_tokens if usage else None,
                         usage.completion_tokens if usage else None,
                         logprobs=choices if extra.get("logprobs") else None, steering=steering)

    def complete(self, model: str, prompt: str, sampling: Sampling = Sampling()) -> Completion:
        import openai

        params = sampling.body()
        try:
            answer = self._openai.completions.create(model=model, prompt=prompt,
                                                     **_standard(params),
                                                     extra_body=_extras(params))
        except openai.OpenAIError as error:
            raise self._translate(error) from None
        choice = answer.choices[0]
        return Completion(choice.text, choice.finish_reason,
                          answer.usage.prompt_tokens if answer.usage else None,
                          answer.usage.completion_tokens if answer.usage else None)

    def write(self, request: StoryRequest, model: str, sampling: Sampling = Sampling(),
              system_prompt: str | None = SYSTEM_PROMPT) -> Iterator[str | Completion]:
        """Stream the story for `request`, prompted exactly as in training."""
        return self.stream(model, story_messages(request, system_prompt), sampling)

    def close(self) -> None:
        self._openai.close()


def _standard(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k in ("temperature", "top_p", "max_tokens", "seed")}


def _extras(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k in ("top_k", "min_p", "repetition_penalty")}


def _message_of(error: Exception) -> str:
    """`HTTP 404: model 'x' is not served here` from an OpenAI-style or plain error body."""
    body = getattr(error, "body", None)
    detail = None
    if isinstance(body, dict):
        inner = body.get("error", body.get("detail", body))
        detail = inner.get("message") if isinstance(inner, dict) else inner
    elif isinstance(body, str):
        detail = body
    status = getattr(error, "status_code", None)
    text = str(detail or getattr(error, "message", None) or error)
    return f"HTTP {status}: {text}" if status and not text.startswith("Error code") else text


# -- changing what the endpoint serves (POST / DELETE /v1/storyteller/models) -------------------

def load_model(endpoint: str, name: str, path: str, api_key: str | None = None,
               default: bool = False, timeout: float = 900.0,
               weights: str | None = None) -> ServedModel:
    """Have the endpoint serve the model at `path` (a directory on the server's machine, or a
    base model's name) as `name`, replacing what served that name; returns once it answers.
    Loading starts an engine, converting the model first on llama.cpp: minutes at most.
    `weights`: llama.cpp's GGUF number type for this model (q8_0 …), else the server's."""
    body = {"name": name, "path": path, "default": default}
    if weights is not None:
        body["weights"] = weights
    entry = _admin(endpoint, "POST", "", api_key, timeout, body)
    return ServedModel(entry["id"], entry.get("max_model_len"), entry.get("storyteller") or {})


def unload_model(endpoint: str, name: str, api_key: str | None = None,
                 drain: float | None = None, timeout: float = 900.0) -> dict[str, Any]:
    """Stop serving `name` once its running requests are done (after `drain` seconds at most,
    the server's default when None). The answer says whether any request was cut short."""
    from urllib.parse import quote

    query = "" if drain is None else f"?drain={drain:g}"
    return _admin(endpoint, "DELETE", "/" + quote(name, safe=""), api_key, timeout, None, query)


def _admin(endpoint: str, method: str, tail: str, api_key: str | None, timeout: float,
           body: dict | None, query: str = "") -> dict[str, Any]:
    root = endpoint.rstrip("/")
    root = root[:-len("/v1")] if root.endswith("/v1") else root
    headers = {"content-type": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(f"{root}/v1/storyteller/models{tail}{query}", method=method,
                                     headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            detail = json.loads(error.read()).get("error") or {}
        except (ValueError, AttributeError):
            detail = {}
        message = f"HTTP {error.code}: {detail.get('message') or error.reason}"
        param = detail.get("param")
        kind = {400: BadRequest, 401: Unauthorized, 403: Unauthorized, 404: ModelNotFound,
                409: EndpointBusy, 503: EndpointBusy}.get(error.code, EngineFailed)
        hint = {400: f"change {param}" if param else "change the request",
                401: "set the key the server was started with",
                403: "send the server's API key, or ask from the server's machine",
                404: "pick one of the served models", 409: "wait until it has loaded"
                }.get(error.code, "see the server's output")
        raise kind(message, hint, endpoint) from None
    except TimeoutError:
        raise EndpointTimeout(f"no answer within {timeout:.0f} s", "loading can take minutes; "
                              "raise the timeout", endpoint) from None
    except (urllib.error.URLError, OSError) as error:
        if isinstance(getattr(error, "reason", None), TimeoutError):
            raise EndpointTimeout(f"no answer within {timeout:.0f} s", "loading can take "
                                  "minutes; raise the timeout", endpoint) from None
        raise EndpointUnreachable("cannot reach the endpoint",
                                  "is `storyteller serve` running at this address?",
                                  endpoint) from None
