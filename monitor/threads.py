"""Group messages into conversations: JWZ references, Thread-Index, X-GM-THRID, then subject."""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import lru_cache
from operator import attrgetter

from monitor.records import MessageRecord, Thread

__all__ = ["base_subject", "has_reply_prefix", "subject_fallback_key", "thread_messages"]

# Reply and forward markers as mail clients write them in many languages. Single letters
# (Italian "R:" / "I:") are left out on purpose: "R: plotting fails" is about the R language.
_PREFIX_WORDS = (
    "re|fwd|fw|aw|wg|sv|vs|vb|vl|odp|pd|antw|antwort|doorst|tr|réf|rép|rif|rv|res|enc"
    "|ynt|ilt|atb|ats|pers|vá|továbbítás|απ|σχετ|πρθ|отв|回复|回覆|答复|转发|轉寄|轉發|회신|전달"
)
# "RE[2]:", "Re(2):", "Re^2:", "RE :" and the full-width colon of CJK clients.
_PREFIX = rf"(?:{_PREFIX_WORDS})(?:\s*(?:\[\d+\]|\(\d+\)|\^\d+))?\s*[:：]"
_TAG = r"\[[^\[\]]*\]"

_LEAD_RE = re.compile(rf"^(?:\s*(?:{_TAG}|{_PREFIX}))+", re.IGNORECASE)
_LEAD_PREFIXES_RE = re.compile(rf"^(?:\s*{_PREFIX})+", re.IGNORECASE)
_HAS_PREFIX_RE = re.compile(rf"^(?:\s*{_TAG})*\s*{_PREFIX}", re.IGNORECASE)
# Old Netscape forwards wrap the whole subject: "[Fwd: Invoice]".
_WRAPPED_RE = re.compile(r"^\s*\[\s*(fwd?|fw)\s*:(.*)\]\s*$", re.IGNORECASE | re.DOTALL)
_SPACE_RE = re.compile(r"\s+")

_NEVER_CHILD = -2  # parent link of a Thread-Index or X-GM-THRID node: not a message


def _unwrap(subject: str) -> str:
    wrapped = _WRAPPED_RE.match(subject)
    return f"{wrapped[1]}: {wrapped[2]}" if wrapped else subject


def _strip_trailing(text: str, tags: bool = True) -> str:
    """Drop [tags] and "(fwd)" from the end (a loop, not a regex: no quadratic backtracking
    on a huge subject full of spaces)."""
    while True:
        text = text.rstrip()
        if tags and text.endswith("]"):
            start = text.rfind("[")
            if start < 0 or "]" in text[start:-1]:
                return text
            text = text[:start]
        elif text[-5:].lower() == "(fwd)":
            text = text[:-5]
        elif text[-4:].lower() == "(fw)":
            text = text[:-4]
        else:
            return text


def _fold(text: str) -> str:
    return _SPACE_RE.sub(" ", text).strip().casefold()


@lru_cache(maxsize=8192)  # a thread's messages share their subject: most calls are repeats
def base_subject(subject: str) -> str:
    """The subject without reply/forward prefixes and [tags], case and spacing folded.

    Tags are only stripped at the start (between prefixes) and at the end, where mail lists
    and ticket systems put them; "Error in [core] module" keeps its middle. A subject that is
    nothing but tags keeps them, so "Re: [ACME-12]" does not fold to the empty string.
    """
    folded = _fold_once(subject)
    for _ in range(4):  # kept tags may themselves hold a prefix ("Re:[Fwd:]"): reach the fixpoint
        again = _fold_once(folded)
        if again == folded:
            break
        folded = again
    return folded


def _fold_once(subject: str) -> str:
    subject = _unwrap(subject)
    stripped = _strip_trailing(_LEAD_RE.sub("", subject))
    if not stripped.strip():
        stripped = _strip_trailing(_LEAD_PREFIXES_RE.sub("", subject), tags=False)
    return _fold(stripped)


def has_reply_prefix(subject: str) -> bool:
    """True when the subject marks a reply or a forward (after any leading [tags])."""
    subject = _unwrap(subject)
    # Pine marks a forward at the end: "Subject (fwd)".
    return bool(_HAS_PREFIX_RE.match(subject)) or subject.rstrip().lower().endswith(
        ("(fwd)", "(fw)")
    )


def _fallback_key(subject: str) -> str | None:
    if not has_reply_prefix(subject):
        return None
    return base_subject(subject) or None


def subject_fallback_key(record: MessageRecord) -> str | None:
    """The base subject by which this message may join an earlier thread, else None.

    Only a message without (usable) reference headers whose subject carries a reply or forward
    prefix is threaded by subject. A caller that threads a subset of the store must include the
    recent threads holding this base subject, or the message cannot find its conversation.
    """
    own = record.message_id
    if any(ref and ref != own for ref in (*record.references, *record.in_reply_to)):
        return None
    return _fallback_key(record.subject)


def thread_messages(
    messages: Iterable[MessageRecord],
    is_external: Callable[[str], bool],
    subject_window: timedelta = timedelta(days=30),
) -> list[Thread]:
    """Split messages into threads (product.md, "Thread"); the same set always gives the same.

    Messages are walked in message-time order (time, then Message-ID) and every decision is
    taken on what precedes the message, so the subject rule sees each thread as it stood when
    the message arrived. Of messages sharing a Message-ID the first given wins. thread_id is
    the oldest ancestor the references name, from the thread's earliest message up (it may be
    a message we never stored). Threads come out ordered by their earliest message.
    """
    collecting = gc.isenabled()
    # Only acyclic containers are made here, O(n) of them: left on, the cyclic collector
    # would rescan the whole heap again and again (a third of the time at 100k messages).
    gc.disable()
    try:
        return _thread(messages, is_external, subject_window)
    finally:
        if collecting:
            gc.enable()


def _thread(
    messages: Iterable[MessageRecord],
    is_external: Callable[[str], bool],
    subject_window: timedelta,
) -> list[Thread]:
    records: dict[str, MessageRecord] = {}
    for record in messages:
        records.setdefault(record.message_id, record)
    # Two stable passes beat one on (time, id) tuples: aware datetimes compare slowly.
    ordered = sorted(records.values(), key=attrgetter("message_id"))
    ordered.sort(key=attrgetter("time"))
    count = len(ordered)

    # Nodes: stored messages first (node i is ordered[i]), then ids only referenced, then one
    # node per Thread-Index root and per X-GM-THRID. uf is the union-find forest. parent holds
    # the JWZ parent links, used only to find each thread's root: -1 none yet, _NEVER_CHILD for
    # the Thread-Index and X-GM-THRID nodes.
    names: list[str] = [r.message_id for r in ordered]
    node_of: dict[str, int] = {name: i for i, name in enumerate(names)}
    parent: list[int] = [-1] * count

    # A message's own headers name its parent (References last, else In-Reply-To first); that
    # beats whatever other messages' References lists imply, in whatever order messages come.
    links: list[list[int] | None] = [None] * count
    chain_length: list[int] = [0] * count  # links[i][:chain_length[i]] is the References chain
    fallback: list[str | None] = [None] * count
    fallback_keys: dict[str, str | None] = {}
    for i, record in enumerate(ordered):
        refs = record.references
        replied = record.in_reply_to
        if refs or replied:
            own = record.message_id
            if own in refs or "" in refs:
                refs = tuple(ref for ref in refs if ref and ref != own)
            if replied and replied != refs[-1:]:
                replied = tuple(ref for ref in replied if ref and ref != own and ref not in refs)
                ids = refs + replied if replied else refs
            else:
                ids = refs
            linked = []
            for ref in ids:
                found = node_of.get(ref)
                if found is None:
                    found = node_of[ref] = len(names)
                    names.append(ref)
                    parent.append(-1)
                linked.append(found)
            if refs:
                parent[i] = linked[len(refs) - 1]
                chain_length[i] = len(refs)
            elif linked:
                parent[i] = linked[0]
        else:
            linked = []
        if record.thread_index_root:
            extra = ("thread-index", record.thread_index_root)
            linked.append(_extra_node(extra, node_of, names, parent))
        if record.gm_thrid is not None:
            extra = ("x-gm-thrid", str(record.gm_thrid))
            linked.append(_extra_node(extra, node_of, names, parent))
        if linked:
            links[i] = linked
        if parent[i] == -1:
            subject = record.subject
            if subject not in fallback_keys:
                fallback_keys[subject] = _fallback_key(subject)
            fallback[i] = fallback_keys[subject]
    uf: list[int] = list(range(len(names)))

    # JWZ: each References list says its ids are a parent/child chain, oldest first. The first
    # claim (in message-time order) wins, and never one that would close a loop. Only a node
    # without a parent is claimed, so it is the root of its tree, and the claim closes a loop
    # exactly when the would-be parent is in that same tree: a second union-find answers that
    # without walking up long chains.
    trees: list[int] = []
    for i in range(count):
        length = chain_length[i]
        if length > 1:
            chain = links[i]
            assert chain is not None
            for pos in range(1, length):
                child = chain[pos]
                if parent[child] != -1:
                    continue
                if not trees:
                    trees = _forest(parent)
                child_tree, up_tree = _find(trees, child), _find(trees, chain[pos - 1])
                if child_tree != up_tree:
                    parent[child] = chain[pos - 1]
                    trees[child_tree] = up_tree

    def find(x: int) -> int:
        while uf[x] != x:
            uf[x] = x = uf[uf[x]]
        return x

    wanted = {key for key in fallback if key is not None}
    if not wanted:
        for i, linked_or_none in enumerate(links):
            if linked_or_none is None:
                continue
            root = find(i)
            for other in linked_or_none:
                other_root = find(other)
                if other_root != root:
                    if other_root < root:
                        root, other_root = other_root, root
                    uf[other_root] = root
    else:
        state = _SubjectState(ordered, is_external, find, wanted)
        for i in range(count):
            root = find(i)
            linked_or_none = links[i]
            if linked_or_none is not None:
                for other in linked_or_none:
                    other_root = find(other)
                    if other_root != root:
                        root = _union(uf, root, other_root, state)
            key = fallback[i]
            # A message Thread-Index or X-GM-THRID already put in a thread stays there.
            if key is not None and not state.has_history(root):
                target = state.best_thread(i, key, subject_window)
                if target is not None:
                    root = _union(uf, root, target, state)
            state.add(i, root)

    groups: dict[int, list[int]] = {}
    for i in range(count):
        root = find(i)
        members = groups.get(root)
        if members is None:
            groups[root] = [i]
        else:
            members.append(i)
    return [
        Thread(
            thread_id=names[_root_of(members[0], parent, count)],
            message_ids=tuple([names[i] for i in members]),
        )
        for members in groups.values()
    ]


def _extra_node(
    key: tuple[str, str], node_of: dict[str, int], names: list[str], parent: list[int]
) -> int:
    # No header holds a NUL, so these names never meet a Message-ID.
    name = "\0".join(key)
    found = node_of.get(name)
    if found is None:
        found = node_of[name] = len(names)
        names.append(name)
        parent.append(_NEVER_CHILD)
    return found


def _find(forest: list[int], x: int) -> int:
    while forest[x] != x:
        forest[x] = x = forest[forest[x]]
    return x


def _union(uf: list[int], a: int, b: int, state: _SubjectState) -> int:
    """Join two roots and return the one that stays (the lower: earlier messages)."""
    root, child = (a, b) if a < b else (b, a)
    uf[child] = root
    state.merge(root, child)
    return root


def _forest(parent: list[int]) -> list[int]:
    """A union-find whose sets are the trees the parent links make so far."""
    forest = list(range(len(parent)))
    for x, up in enumerate(parent):
        if up >= 0:
            a, b = _find(forest, x), _find(forest, up)
            if a != b:
                forest[a] = b
    return forest


def _root_of(start: int, parent: list[int], stored: int) -> int:
    """Follow parent links up from the thread's earliest message to its oldest ancestor."""
    path: dict[int, int] = {}
    x = start
    while parent[x] >= 0 and x not in path:
        path[x] = len(path)
        x = parent[x]
    if parent[x] < 0:
        return x
    # Messages naming each other as parents: the loop's earliest message stands as the root.
    loop = list(path)[path[x] :]
    in_store = [n for n in loop if n < stored]
    return min(in_store) if in_store else min(loop)


class _SoFar:
    """One thread as the subject rule sees it so far.

    Most threads never hold a subject any message may join by; for those only the positions
    of their messages are kept, and their participants are worked out if that ever changes.
    """

    __slots__ = ("dormant", "externals", "last", "members", "subjects")

    def __init__(self, last: int) -> None:
        self.last = last  # position of its latest message
        self.members: list[int] | None = [last]  # while subjects is empty
        self.subjects: set[str] = set()  # base subjects some message may join by
        self.externals: set[str] = set()  # kept once subjects is not empty
        self.dormant: set[tuple[str, str]] | None = None  # index pairs dropped while quiet


class _SubjectState:
    """What the subject rule needs of each thread so far: last message, subjects, externals.

    Threads are indexed by (base subject, external address) pairs, so a message only ever
    looks at threads it may join: a busy subject with many customers stays cheap. Threads
    quiet for longer than the window are dropped from the index and remembered as dormant;
    they are put back if they wake up (a reply under a new subject can revive a thread that
    still holds the old one).
    """

    def __init__(
        self,
        ordered: list[MessageRecord],
        is_external: Callable[[str], bool],
        find: Callable[[int], int],
        wanted: set[str],
    ) -> None:
        self._ordered = ordered
        self._find = find
        self._is_external = is_external
        self._wanted = wanted
        self._external_cache: dict[str, bool] = {}
        self._participants_cache: dict[object, frozenset[str]] = {}
        self._base_cache: dict[str, str | None] = {}
        self._threads: dict[int, _SoFar] = {}  # by union-find root
        self._index: dict[tuple[str, str], list[int]] = {}

    def _externals_of(self, i: int) -> frozenset[str]:
        record = self._ordered[i]
        key = (record.from_addr, record.to_addrs, record.cc_addrs)
        found = self._participants_cache.get(key)
        if found is None:
            external: list[str] = []
            for addr in (record.from_addr, *record.to_addrs, *record.cc_addrs):
                if not addr:
                    continue
                verdict = self._external_cache.get(addr)
                if verdict is None:
                    verdict = self._external_cache[addr] = self._is_external(addr)
                if verdict:
                    external.append(addr)
            found = self._participants_cache[key] = frozenset(external)
        return found

    def _wanted_base(self, i: int) -> str | None:
        subject = self._ordered[i].subject
        try:
            return self._base_cache[subject]
        except KeyError:
            base = base_subject(subject)
            wanted = self._base_cache[subject] = base if base in self._wanted else None
            return wanted

    def _put(self, pair: tuple[str, str], root: int) -> None:
        entries = self._index.get(pair)
        if entries is None:
            self._index[pair] = [root]
        else:
            entries.append(root)

    def _add_externals(self, thread: _SoFar, root: int, externals: Iterable[str]) -> None:
        if not thread.externals.issuperset(externals):
            new = set(externals) - thread.externals
            thread.externals |= new
            for subject in thread.subjects:
                for addr in new:
                    self._put((subject, addr), root)

    def _add_subject(self, thread: _SoFar, root: int, subject: str) -> None:
        if subject in thread.subjects:
            return
        if thread.members is not None:
            externals = thread.externals
            for member in thread.members:
                externals |= self._externals_of(member)
            thread.members = None
        for addr in thread.externals:
            self._put((subject, addr), root)
        thread.subjects.add(subject)

    def has_history(self, root: int) -> bool:
        return root in self._threads

    def merge(self, root: int, child: int) -> None:
        moved = self._threads.pop(child, None)
        if moved is None:
            return  # a thread with no message yet carries no state
        kept = self._threads.get(root)
        if kept is None:
            self._threads[root] = moved
            return
        if kept.members is not None and moved.members is not None:
            kept.last = max(kept.last, moved.last)
            if len(kept.members) < len(moved.members):
                kept.members, moved.members = moved.members, kept.members
            kept.members.extend(moved.members)
            return
        if kept.members is not None:
            kept, moved = moved, kept  # the side that has subjects absorbs the other
            self._threads[root] = kept
        kept.last = max(kept.last, moved.last)
        if moved.dormant:
            if kept.dormant is None:
                kept.dormant = moved.dormant
            else:
                kept.dormant |= moved.dormant
        if moved.members is not None:
            for member in moved.members:
                self._add_externals(kept, root, self._externals_of(member))
            return
        # Pairs each side indexed already resolve to the new root; only cross pairs are new.
        for subject in moved.subjects - kept.subjects:
            for addr in kept.externals - moved.externals:
                self._put((subject, addr), root)
        for subject in kept.subjects - moved.subjects:
            for addr in moved.externals - kept.externals:
                self._put((subject, addr), root)
        kept.subjects |= moved.subjects
        kept.externals |= moved.externals

    def best_thread(self, i: int, key: str, window: timedelta) -> int | None:
        """The most recent earlier thread with this base subject the message may join."""
        cutoff = self._ordered[i].time - window
        best: int | None = None
        best_last = -1
        for addr in self._externals_of(i):
            pair = (key, addr)
            entries = self._index.get(pair)
            if not entries:
                continue
            kept: list[int] = []
            seen: set[int] = set()
            for entry in entries:
                root = self._find(entry)
                if root in seen:
                    continue
                seen.add(root)
                thread = self._threads[root]
                if self._ordered[thread.last].time < cutoff:
                    if thread.dormant is None:
                        thread.dormant = {pair}
                    else:
                        thread.dormant.add(pair)
                    continue
                kept.append(root)
                if thread.last > best_last:
                    best, best_last = root, thread.last
            self._index[pair] = kept
        return best

    def add(self, i: int, root: int) -> None:
        """Record message i as the latest of its thread."""
        thread = self._threads.get(root)
        if thread is None:
            thread = self._threads[root] = _SoFar(i)
        else:
            thread.last = i
            if thread.members is not None:
                thread.members.append(i)
            else:
                externals = self._externals_of(i)
                if not thread.externals.issuperset(externals):
                    self._add_externals(thread, root, externals)
        base = self._wanted_base(i)
        if base is not None and base not in thread.subjects:
            self._add_subject(thread, root, base)
        if thread.dormant:
            for pair in thread.dormant:
                self._put(pair, root)
            thread.dormant = None
