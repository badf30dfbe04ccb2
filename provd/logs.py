"""Logging, configured once in ``main``: structlog, one event per line, secrets never out.

Output suits journald: each line starts with an ``<N>`` syslog priority prefix (journald
maps it to PRIORITY), followed by ``event key=value ...`` or one JSON object. On a TTY the
console renderer is used instead.

Secrets are kept out in one processor, :func:`redact_secrets`: any field whose name says it is
a secret is masked, and every string value is scrubbed of each secret registered with
:func:`register_secret` (passwords, session keys, digests as provd learns them), so a secret
that slips into an error text or an exception is masked too.

The registry is bounded and never blocks the event loop:

- a secret up to :data:`MAX_SECRET_LEN` characters is searched for whole; a longer one by
  its first :data:`LONG_PREFIX` characters plus its length and SHA-256 digest: where the
  prefix appears, the whole secret is masked when the text holds it, otherwise everything
  from the prefix to the end of the value (a cut-off copy is masked too);
- all searched words together stay under :data:`MAX_TOTAL_CHARS`; past it a new secret is
  refused with a warning (fields named like secrets are still masked);
- a secret registered for an ``owner`` (a phone's MAC) is forgotten with
  :func:`forget_secret` / :func:`forget_secrets` once no owner holds it any more (phone
  removed, password replaced); one registered without an owner stays for the process;
- the Aho-Corasick automaton is rebuilt on a background thread and swapped in atomically;
  until then the secrets added since the last build are found through an index of their
  first characters. A build is due once as many words wait as the automaton holds (or
  :data:`_REBUILD_AFTER`, the first time): the automaton doubles, so each word is built
  into it a bounded number of times however many phones there are (issue 14: a build
  every 1,024 words cost O(phones) per provisioned phone, 2 s of CPU each at 30,000 words).
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
import time
from collections.abc import Hashable
from typing import Any

import ahocorasick
import attrs
import structlog

from . import journal as _journal

SECRET_FIELDS = frozenset(
    {"password", "pwd", "digest", "key", "session_key", "secret", "turnpassword", "token"}
)
MASK = "********"

#: Secrets shorter than this are not scrubbed from text (they would mask ordinary words).
MIN_SECRET_LEN = 4
#: Secrets up to this length are searched for whole.
MAX_SECRET_LEN = 128
#: Longer secrets are searched for by this many leading characters.
LONG_PREFIX = 64
#: Characters of all searched words together, at most (the automaton needs ~40 bytes each).
MAX_TOTAL_CHARS = 1_000_000
#: Words added since the last build that trigger the first (background) build; later
#: ones wait for as many new words as the automaton holds.
_REBUILD_AFTER = 64


@attrs.define
class _Entry:
    word: str  # what is searched for: the secret, or its prefix
    length: int  # the whole secret's length
    digest: bytes | None  # SHA-256 of the whole secret, when only a prefix is searched
    refs: int = 0  # owners holding it
    permanent: bool = False  # registered without an owner


class _PendingWords:
    """Words not yet in the automaton, indexed by their first ``MIN_SECRET_LEN``
    characters: finding them in a text costs one dict lookup per position of the text,
    not one ``str.find`` per word (with thousands of phones provisioned, hundreds of words
    wait for the background build, and every log line is scrubbed)."""

    def __init__(self) -> None:
        self._words: set[str] = set()
        self._by_head: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word: object) -> bool:
        return word in self._words

    def add(self, word: str) -> None:
        if word not in self._words:
            self._words.add(word)
            self._by_head.setdefault(word[:MIN_SECRET_LEN], set()).add(word)

    def discard(self, word: str) -> None:
        if word in self._words:
            self._words.discard(word)
            head = word[:MIN_SECRET_LEN]
            words = self._by_head[head]
            words.discard(word)
            if not words:
                del self._by_head[head]

    def difference_update(self, words: list[str]) -> None:
        for word in words:
            self.discard(word)

    def may_hit(self, text: str) -> bool:
        """Whether a pending word's head is in ``text`` (a quick, conservative test: the
        text's heads are gathered in one set comprehension, compared in C)."""
        if not self._words:
            return False
        n = MIN_SECRET_LEN
        heads = {text[i : i + n] for i in range(len(text) - n + 1)}
        return not self._by_head.keys().isdisjoint(heads)

    def hits(self, text: str) -> list[tuple[int, str]]:
        """(start, word) of every occurrence of a pending word in ``text``."""
        if not self._words:
            return []
        by_head = self._by_head
        found: list[tuple[int, str]] = []
        for start in range(len(text) - MIN_SECRET_LEN + 1):
            words = by_head.get(text[start : start + MIN_SECRET_LEN])
            if words:
                found += [(start, w) for w in words if text.startswith(w, start)]
        return found


class _SecretScrubber:
    """Finds every registered secret in a text in one pass (Aho-Corasick), however many
    secrets a daemon with thousands of phones holds. Words added since the automaton was
    built are checked one by one, so none is ever missed; words removed since are ignored
    where the old automaton still finds them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Hashable, _Entry] = {}
        self._by_word: dict[str, list[Hashable]] = {}
        self._owned: dict[str, set[Hashable]] = {}
        self._chars = 0
        self._pending = _PendingWords()
        self._stale = 0
        self._automaton: ahocorasick.Automaton | None = None
        self._automaton_words: list[str] = []
        self._building = False
        self._worker: threading.Thread | None = None
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._cap_warned = False

    # --- registry (any thread; O(length of the secret), never a build) ----------------------

    @staticmethod
    def _key(secret: str) -> tuple[Hashable, str, bytes | None]:
        if len(secret) <= MAX_SECRET_LEN:
            return secret, secret, None
        digest = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()
        return (digest, len(secret)), secret[:LONG_PREFIX], digest

    def add(self, secret: str, owner: str | None = None) -> bool:
        """Register; False if refused because the registry is full."""
        key, word, digest = self._key(secret)
        refused = warn = False
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                new_word = word not in self._by_word
                if new_word and self._chars + len(word) > MAX_TOTAL_CHARS:
                    warn, self._cap_warned = not self._cap_warned, True
                    refused = True
                else:
                    entry = self._entries[key] = _Entry(word, len(secret), digest)
                    self._by_word.setdefault(word, []).append(key)
                    if new_word:
                        self._chars += len(word)
                        self._pending.add(word)
                        self._maybe_build()
            if entry is not None:
                if owner is None:
                    entry.permanent = True
                else:
                    keys = self._owned.setdefault(owner, set())
                    if key not in keys:
                        keys.add(key)
                        entry.refs += 1
        if refused and warn:
            structlog.get_logger("provd.logs").warning(
                "logs.secret_registry_full", limit_chars=MAX_TOTAL_CHARS
            )
        return not refused

    def forget(self, secret: str, owner: str | None = None) -> None:
        key, _word, _digest = self._key(secret)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            if owner is None:
                entry.permanent = False
            else:
                keys = self._owned.get(owner)
                if keys is None or key not in keys:
                    return
                keys.discard(key)
                if not keys:
                    del self._owned[owner]
                entry.refs -= 1
            self._drop_if_unheld(key, entry)

    def forget_owner(self, owner: str) -> None:
        with self._lock:
            for key in self._owned.pop(owner, ()):
                entry = self._entries.get(key)
                if entry is not None:
                    entry.refs -= 1
                    self._drop_if_unheld(key, entry)

    def _drop_if_unheld(self, key: Hashable, entry: _Entry) -> None:
        if entry.refs > 0 or entry.permanent:
            return
        del self._entries[key]
        keys = self._by_word[entry.word]
        keys.remove(key)
        if not keys:
            del self._by_word[entry.word]
            self._chars -= len(entry.word)
            if entry.word in self._pending:
                self._pending.discard(entry.word)
            else:
                self._stale += 1
                self._maybe_build()
        if self._chars < MAX_TOTAL_CHARS // 2:
            self._cap_warned = False  # warn again when it fills up again

    # --- background build -------------------------------------------------------------------

    def _due(self) -> bool:
        # Rebuild once as many words wait as the automaton holds: the automaton doubles, so
        # the builds cost O(1) per word in all. (With a fixed 64, and then with a cap of
        # 1,024 pending words, the builds grew with the square of the phones: at 10,000
        # phones, 30,000 words, each build took seconds of CPU, issue 14.) However many words
        # wait, a log line looks them up once per character (_PendingWords.hits).
        pending_limit = max(_REBUILD_AFTER, len(self._automaton_words))
        return len(self._pending) >= pending_limit or self._stale >= max(
            _REBUILD_AFTER, len(self._by_word) // 2
        )

    def _maybe_build(self) -> None:
        """Wake the builder thread if a build is due and none runs (lock held; never waits:
        the thread is started once, then only notified)."""
        if self._building or not self._due():
            return
        self._building = True
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="provd-secrets", daemon=True)
            self._worker.start()
        else:
            self._wake.notify()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._building:
                    self._wake.wait()
            try:
                self._build()
            except Exception:  # noqa: S110 - until a later build the words stay pending,
                pass  # and pending words are checked one by one: nothing is missed
            finally:
                with self._lock:
                    self._building = False  # the next registration may start another
                    self._idle.notify_all()

    def _build(self) -> None:
        while True:
            with self._lock:
                words = list(self._by_word)
                self._stale = 0
            automaton: ahocorasick.Automaton | None = None
            if words:
                automaton = ahocorasick.Automaton()
                for i, word in enumerate(words):
                    automaton.add_word(word, word)
                    if i % 256 == 255:
                        time.sleep(0)  # hand the GIL to the event loop now and then
                automaton.make_automaton()
            with self._lock:
                # The swap. Scrubbers use the automaton under the lock only, so from here
                # on nobody but this thread holds the old one.
                old, self._automaton = self._automaton, automaton
                old_words, self._automaton_words = self._automaton_words, words
                self._pending.difference_update(words)
                again = self._due()
                if not again:
                    self._building = False
                    self._idle.notify_all()
            if old is not None:
                _dismantle(old, old_words)
            if not again:
                return

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until no build runs (tests, benchmarks). False on timeout."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._building, timeout)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "secrets": len(self._entries),
                "words": len(self._by_word),
                "chars": self._chars,
                "pending": len(self._pending),
                "owners": len(self._owned),
            }

    # --- scrubbing --------------------------------------------------------------------------

    def __bool__(self) -> bool:
        return bool(self._entries)

    def found_in(self, text: str) -> bool:
        """Whether ``text`` may hold a registered secret (a hit of a long secret's prefix
        counts): a quick test before :meth:`scrub`."""
        if len(text) < MIN_SECRET_LEN or not self._entries:
            return False
        with self._lock:
            if self._pending.may_hit(text):
                return True
            automaton = self._automaton
            return automaton is not None and next(automaton.iter(text), None) is not None

    def scrub(self, text: str) -> str:
        if len(text) < MIN_SECRET_LEN or not self._entries:
            return text
        with self._lock:  # short: one pass of the automaton, a few pending words
            spans = self._spans(text)
        if not spans:
            return text
        spans.sort()
        out: list[str] = []
        pos = 0
        cur_start, cur_end = spans[0]
        for start, end in spans[1:]:
            if start < cur_end:
                cur_end = max(cur_end, end)
                continue
            out += [text[pos:cur_start], MASK]
            pos = cur_end
            cur_start, cur_end = start, end
        out += [text[pos:cur_start], MASK, text[cur_end:]]
        return "".join(out)

    def _spans(self, text: str) -> list[tuple[int, int]]:
        """Where registered secrets are in ``text`` (lock held)."""
        hits = self._pending.hits(text)
        if self._automaton is not None:
            hits.extend((end - len(word) + 1, word) for end, word in self._automaton.iter(text))
        spans: list[tuple[int, int]] = []
        for start, word in hits:
            for key in self._by_word.get(word, ()):  # absent: forgotten since the build
                entry = self._entries[key]
                if entry.digest is None:
                    spans.append((start, start + len(word)))
                    continue
                whole = text[start : start + entry.length]
                if len(whole) == entry.length and (
                    hashlib.sha256(whole.encode("utf-8", "surrogatepass")).digest() == entry.digest
                ):
                    spans.append((start, start + entry.length))
                else:  # a cut-off copy, or another text sharing the prefix
                    spans.append((start, len(text)))
        return spans


def _dismantle(automaton: ahocorasick.Automaton, words: list[str]) -> None:
    """Free an automaton word by word, yielding the GIL now and then: freeing a big one in
    one go holds the GIL (and so the event loop) for tens of milliseconds."""
    for i, word in enumerate(words):
        automaton.remove_word(word)
        if i % 256 == 255:
            time.sleep(0)


_secrets = _SecretScrubber()

_SYSLOG_PRIORITY = {"critical": 2, "exception": 3, "error": 3, "warning": 4, "info": 6, "debug": 7}


def register_secret(value: str | None, owner: str | None = None) -> None:
    """Never let ``value`` appear in a log line from now on (until forgotten).

    Args:
        owner: who holds it (a phone's MAC): :func:`forget_secrets` for that owner, or
            :func:`forget_secret`, forgets it once no other owner holds it. Without an
            owner it is kept for the life of the process.
    """
    if value and len(value) >= MIN_SECRET_LEN:
        _secrets.add(value, owner)


def forget_secret(value: str | None, owner: str | None = None) -> None:
    """``owner`` no longer holds ``value`` (a replaced password); forgotten when nobody does."""
    if value and len(value) >= MIN_SECRET_LEN:
        _secrets.forget(value, owner)


def forget_secrets(owner: str) -> None:
    """``owner`` is gone (a removed phone): forget what only it held."""
    _secrets.forget_owner(owner)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return _secrets.scrub(value)
    if isinstance(value, dict):
        return {k: MASK if _is_secret_name(k) else _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


#: Field names seen so far and whether each names a secret: a log line's keys come from a
#: small fixed set, so each is normalised once, not once per line (issue 14).
_SECRET_NAMES: dict[str, bool] = {}


def _is_secret_name(name: Any) -> bool:
    if not isinstance(name, str):
        return False
    known = _SECRET_NAMES.get(name)
    if known is None:
        known = name.lower().replace("-", "_") in SECRET_FIELDS
        if len(_SECRET_NAMES) < 4096:  # bounded: keys of a peer's dict pass here too
            _SECRET_NAMES[name] = known
    return known


#: Joins a line's text values for one search; a secret spanning two values through it
#: is only a false alarm (the values are then scrubbed one by one, as always).
_JOIN = "\x00"


def redact_secrets(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: mask secret fields and scrub registered secrets from all values.

    A line's text values are searched together first, under one lock: most lines hold no
    secret, and the search per value (a lock, the automaton, the index of words not yet
    built into it) was half the cost of an info line (issue 14). Only a line with a hit
    is scrubbed value by value.
    """
    texts: list[str] = []
    for name, value in list(event_dict.items()):
        if _is_secret_name(name):
            event_dict[name] = MASK
        elif isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict | list | tuple):
            event_dict[name] = _scrub_value(value)
    if texts and _secrets and _secrets.found_in(_JOIN.join(texts)):
        for name, value in list(event_dict.items()):
            if isinstance(value, str) and value != MASK:
                event_dict[name] = _secrets.scrub(value)
    return event_dict


def _syslog_prefix(_logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    event_dict["_priority"] = _SYSLOG_PRIORITY.get(method, 6)
    return event_dict


class _JournalRenderer:
    """``<6>event=... key=value`` (logfmt) or ``<6>{...}`` (JSON) lines."""

    def __init__(self, json: bool) -> None:
        self._inner = (
            structlog.processors.JSONRenderer(sort_keys=False)
            if json
            else structlog.processors.LogfmtRenderer(
                key_order=["event"], drop_missing=True, bool_as_flag=False
            )
        )

    def __call__(self, logger: Any, method: str, event_dict: dict[str, Any]) -> str:
        priority = event_dict.pop("_priority", 6)
        event_dict.pop("level", None)  # the <N> prefix carries it
        if "event" in event_dict:
            event_dict = {"event": event_dict.pop("event"), **event_dict}
        return f"<{priority}>{self._inner(logger, method, event_dict)}"


class _StdlibBridge(logging.Handler):
    """Forward stdlib log records (hypercorn, trio-websocket) into structlog."""

    def emit(self, record: logging.LogRecord) -> None:
        method = record.levelname.lower()
        method = method if method in ("debug", "info", "warning", "error", "critical") else "info"
        getattr(structlog.get_logger(record.name), method)(
            "library." + record.name, message=record.getMessage()
        )


_bridge = _StdlibBridge()

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


#: Listeners that see every warning and error event (redacted), e.g. the admin App's
#: "errors of the last hour" (:func:`add_tap`).
_TAPS: list[Any] = []


def add_tap(fn: Any) -> None:
    """Call ``fn(event_dict)`` for every warning/error event, after secrets are redacted."""
    if fn not in _TAPS:
        _TAPS.append(fn)


def remove_tap(fn: Any) -> None:
    if fn in _TAPS:
        _TAPS.remove(fn)


def _tap(_logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    if _TAPS and event_dict.get("level") in ("warning", "error", "critical"):
        for fn in list(_TAPS):
            fn(dict(event_dict))
    return event_dict


#: Whether a wrapper class (structlog's configured one) lets debug events through.
_debug_by_wrapper: dict[Any, bool] = {}


def debug_enabled() -> bool:
    """Whether debug events are logged: a hot path checks this before building one (a
    filtered-out ``log.debug`` through structlog's lazy proxy still costs ~25 us; this
    costs well under 1 us and follows structlog's configuration, resets included)."""
    wrapper = structlog.get_config()["wrapper_class"]
    enabled = _debug_by_wrapper.get(wrapper)
    if enabled is None:
        try:
            probe = wrapper(None, processors=[], context={})
            enabled = bool(probe.is_enabled_for(logging.DEBUG))
        except Exception:  # a wrapper without levels: it logs everything
            enabled = True
        _debug_by_wrapper[wrapper] = enabled
    return enabled


class _LineLoggerFactory:
    """One shared :class:`structlog.WriteLogger` for every logger: a line goes out in one
    ``write`` (``PrintLogger`` prints the text and its newline as two, each a wake-up of
    whoever reads the pipe: journald, or the bench and tests following a child's output;
    issue 14), and no logger object is built per call."""

    def __init__(self, stream: Any) -> None:
        self._logger = structlog.WriteLogger(stream)

    def __call__(self, *_args: Any) -> structlog.WriteLogger:
        return self._logger


def configure(level: str = "info", *, fmt: str = "auto", stream: Any = None) -> None:
    """Configure structlog for the process. ``fmt``: ``auto`` | ``console`` | ``kv`` | ``json``.

    Call again (e.g. on SIGHUP) to change the level; loggers pick it up at once.
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        # started by systemd with the journal attached: native journal entries (provd.journal)
        fmt = "journal" if _journal.stream_is_journal(stream) else fmt
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "kv"
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.format_exc_info,
        redact_secrets,
        _tap,
    ]
    if fmt == "console":
        processors += [
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            structlog.dev.ConsoleRenderer(colors=False),
        ]
    elif fmt == "journal":
        processors += [_syslog_prefix, _journal.NativeRenderer()]
    else:
        processors += [_syslog_prefix, _JournalRenderer(json=fmt == "json")]
    root = logging.getLogger()
    if _bridge not in root.handlers:
        root.addHandler(_bridge)
    root.setLevel(logging.WARNING)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=(
            _journal.JournalLoggerFactory(stream)
            if fmt == "journal"
            else _LineLoggerFactory(stream)
        ),
        cache_logger_on_first_use=False,
    )
