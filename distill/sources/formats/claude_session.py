"""One Claude Code session, folded event by event into the row its source reads.

Only what the record needs is kept (the first request, the last assistant text, the files
changed, the commands run, the outcome signals), never the events themselves: a session of any
length folds in constant memory per tool call in flight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

EDIT_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
INTERRUPTED = "[Request interrupted by user"
REJECTED = "The user doesn't want to proceed with this tool use"
NOT_A_REQUEST = ("<command-", "<local-command-", "Caveat: The messages below were generated")
TEST_COMMAND = re.compile(
    r"\b(pytest|py\.test|tox|nox|jest|vitest|mocha|rspec|phpunit|unittest)\b"
    r"|\b(npm|pnpm|yarn|bun)\s+(run\s+)?test\b"
    r"|\b(cargo|go|dotnet|mix|swift|deno)\s+test\b"
    r"|\b(make|just)\s+(test|check)\b"
)
"""A Bash command that runs tests: pytest, tox, jest, `npm test`, `cargo test`, `go test`,
`make test`/`check`, `just test`/`check`, …"""
_EXIT_CODE = re.compile(r"Exit code (\d+)")
MAX_COMMANDS = 100
SHOWN_COMMANDS = 30


@dataclass
class _Outcome:
    interrupted: bool = False
    tool_rejected: bool = False
    last_test: str | None = None
    last_test_command: str | None = None
    edited_after_test: bool = False
    last_tool_error: bool = False


@dataclass
class ClaudeSession:
    """The fold of one session's lines (see :func:`fold_lines`)."""

    session_id: str
    started_at: Any = None
    ended_at: Any = None
    cwd: str | None = None
    git_branch: str | None = None
    version: str | None = None
    model: str | None = None
    instruction: str | None = None
    events: int = 0
    user_turns: int = 0
    tool_calls: int = 0
    files: dict[str, None] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    commands_run: int = 0
    outcome: _Outcome = field(default_factory=_Outcome)
    _final_message: Any = None
    _final_text: list[str] = field(default_factory=list)
    _tests_pending: dict[str, str] = field(default_factory=dict)

    def add(self, event: dict[str, Any]) -> None:
        self.events += 1
        stamp = event.get("timestamp")
        if stamp is not None:
            self.started_at = self.started_at if self.started_at is not None else stamp
            self.ended_at = stamp
        if event.get("isSidechain") is True:  # a subagent's work: its parent reports it
            return
        self.cwd = self.cwd or _text(event.get("cwd"))
        self.git_branch = self.git_branch or _text(event.get("gitBranch"))
        self.version = self.version or _text(event.get("version"))
        message = event.get("message")
        if not isinstance(message, dict) or event.get("isMeta") is True:
            return
        if event.get("type") == "user":
            self._user(message.get("content"))
        elif event.get("type") == "assistant":
            self.model = _text(message.get("model")) or self.model
            self._assistant(message)

    def _user(self, content: Any) -> None:
        if isinstance(content, str):
            self._user_text(content)
            return
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_result":
                self._tool_result(block)
            elif block.get("type") == "text":
                self._user_text(_text(block.get("text")) or "")

    def _user_text(self, text: str) -> None:
        text = text.strip()
        if not text or text.startswith(NOT_A_REQUEST):
            return
        if text.startswith(INTERRUPTED):
            self.outcome.interrupted = True
            return
        self.instruction = self.instruction or text
        self.user_turns += 1
        self.outcome.interrupted = False
        self.outcome.tool_rejected = False

    def _tool_result(self, block: dict[str, Any]) -> None:
        output = _result_text(block.get("content"))
        failed = block.get("is_error") is True or _nonzero_exit(output)
        if output.startswith(REJECTED):
            self.outcome.tool_rejected = True
        self.outcome.last_tool_error = failed
        command = self._tests_pending.pop(str(block.get("tool_use_id")), None)
        if command is not None:
            self.outcome.last_test = "failed" if failed else "passed"
            self.outcome.last_test_command = command
            self.outcome.edited_after_test = False

    def _assistant(self, message: dict[str, Any]) -> None:
        for block in message.get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and (_text(block.get("text")) or "").strip():
                if message.get("id") != self._final_message or message.get("id") is None:
                    self._final_text = []
                self._final_message = message.get("id")
                self._final_text.append(str(block["text"]).strip())
            elif block.get("type") == "tool_use":
                self._tool_use(block)

    def _tool_use(self, block: dict[str, Any]) -> None:
        self.tool_calls += 1
        name, tool_input = block.get("name"), block.get("input")
        tool_input = tool_input if isinstance(tool_input, dict) else {}
        if name in EDIT_TOOLS:
            target = _text(tool_input.get("file_path")) or _text(tool_input.get("notebook_path"))
            if target:
                self.files.setdefault(self._relative(target), None)
            if self.outcome.last_test is not None:
                self.outcome.edited_after_test = True
        elif name == "Bash":
            command = (_text(tool_input.get("command")) or "").strip()
            if not command:
                return
            self.commands_run += 1
            if len(self.commands) < MAX_COMMANDS:
                self.commands.append(command[:200])
            if TEST_COMMAND.search(command):
                self._tests_pending[str(block.get("id"))] = command[:200]

    def _relative(self, path: str) -> str:
        root = (self.cwd or "").rstrip("/")
        return path[len(root) + 1 :] if root and path.startswith(root + "/") else path

    def row(self) -> dict[str, Any]:
        outcome = self.outcome
        return {
            "session_id": self.session_id,
            "created_at": self.ended_at,
            "started_at": self.started_at,
            "instruction": self.instruction or "",
            "final_text": "\n\n".join(self._final_text),
            "actions": self._actions(),
            "files": list(self.files),
            "commands": self.commands,
            "cwd": self.cwd,
            "git_branch": self.git_branch,
            "version": self.version,
            "model": self.model,
            "events": self.events,
            "user_turns": self.user_turns,
            "tool_calls": self.tool_calls,
            "outcome": {
                "interrupted": outcome.interrupted,
                "tool_rejected": outcome.tool_rejected,
                "last_test": outcome.last_test,
                "last_test_command": outcome.last_test_command,
                "edited_after_test": outcome.edited_after_test,
                "last_tool_error": outcome.last_tool_error,
            },
        }

    def _actions(self) -> str:
        lines = []
        if self.files:
            lines.append("Files changed: " + ", ".join(self.files))
        if self.commands:
            lines.append("Commands run:")
            lines += [f"- {c.splitlines()[0]}" for c in self.commands[:SHOWN_COMMANDS]]
            if self.commands_run > SHOWN_COMMANDS:
                lines.append(f"- … and {self.commands_run - SHOWN_COMMANDS} more")
        return "\n".join(lines)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        parts = [b.get("text") for b in content if isinstance(b, dict)]
        return "\n".join(p for p in parts if isinstance(p, str)).strip()
    return ""


def _nonzero_exit(output: str) -> bool:
    found = _EXIT_CODE.match(output)
    return found is not None and found.group(1) != "0"
