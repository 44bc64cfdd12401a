"""MetaCLIP sub-string matching, batched and vectorised: a token trie walked with NumPy.

Semantics are exactly MetaCLIP's: query q matches text t when `" " + q + " "` is a sub-string of
`S = spaced(t)` (spacing.py); case-sensitive. Because the match is delimited by
spaces on both sides, that holds exactly when `q.split(" ")` equals a run of consecutive *interior*
parts of `S.split(" ")` (the parts between two spaces; empty parts included, so queries with odd
spacing behave as in MetaCLIP). So the automaton is a trie over token ids instead of characters.

MetaCLIP scans each text with a character Aho-Corasick automaton and gathers matches in a Python
loop per match. Here a whole batch is encoded to UTF-8 once (Arrow) and cut into those parts by
NumPy over its bytes, without building the spaced text: spaces, tabs and newlines end a part, and
each of MetaCLIP's seven marks is a one-byte part of its own (all ASCII, so never inside a UTF-8
character). A part of up to 7 bytes *is* its 64-bit key (bytes + length); a longer one is hashed
and, when the hash finds a vocabulary token, compared with it byte by byte, so ids are exact. The
trie is then walked for every start position at once, one NumPy step per query length (edges in a
vectorised hash map). Only a list slice per text is left in Python. Query strings are unique
(queries.parquet contract).
"""
from __future__ import annotations

import gc
import re
from contextlib import contextmanager
from typing import Sequence

import numpy as np
import pyarrow as pa

from openwit.pipeline.candidates.spacing import CHARS_TO_SPACE, PUNCTS_TO_WRAP

_SURROGATE = re.compile("[\ud800-\udfff]")
_SEPARATORS = (" " + "".join(CHARS_TO_SPACE)).encode()  # end a part (tabs and newlines are spaces in the spaced text)
_MARKS = "".join(PUNCTS_TO_WRAP).encode()  # MetaCLIP pads these with spaces: each is a part of its own (all ASCII)
_SHORT = 7                   # parts of up to 7 bytes are their own key: bytes, then the length
_MASKS = np.array([(1 << 8 * k) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_LONG_TAG = np.uint64(1 << 62)  # set in every hashed key, never in a short one (length ≤ 7 < 64)


class Matcher:
    """Trie over the queries' tokens; `match_many(texts)` gives each text's sorted unique query ids."""

    def __init__(self, queries: Sequence[str]):
        vocab: dict[str, int] = {}
        edges: dict[tuple[int, int], int] = {}  # (parent node, token id) -> child node
        terminal: dict[int, int] = {}           # node -> query id
        token_lists = []
        for qid, q in enumerate(queries):
            if any(c in q for c in CHARS_TO_SPACE):
                continue  # can never match: spaced text holds no tab or newline
            toks = [vocab.setdefault(t, len(vocab)) for t in q.split(" ")]
            token_lists.append((qid, toks))
        n_vocab = len(vocab)
        next_node = n_vocab  # depth-1 nodes are the token ids themselves
        for qid, toks in token_lists:
            node = toks[0]
            for tok in toks[1:]:
                child = edges.get((node, tok))
                if child is None:
                    child = edges[(node, tok)] = next_node
                    next_node += 1
                node = child
            terminal[node] = qid
        self._set_vocab(list(vocab))
        used = set().union(*vocab)
        self._absent = next(chr(c) for c in range(0xE000, 0x110000) if chr(c) not in used)
        self._tok_bits = max(n_vocab, 1).bit_length()   # edge key = parent << tok_bits | token
        self._qid_bits = max(len(queries), 1).bit_length()  # hit key = text << qid_bits | query
        # One spare entry at the end: token id -1 (no query has it) indexes it and finds nothing.
        self._node_qid = np.full(next_node + 1, -1, dtype=np.int64)
        self._node_qid[list(terminal)] = list(terminal.values())
        # The ids as Python ints made once: results share them (no int objects made or freed per hit).
        self._qid_objects = np.array(range(len(queries)), dtype=object)
        self._has_child = np.zeros(next_node + 1, dtype=bool)
        self._has_child[[p for p, _ in edges]] = True
        self._edges = IntMap(np.array([(p << self._tok_bits) | t for p, t in edges], dtype=np.int64),
                             np.array(list(edges.values()), dtype=np.int64))

    def _set_vocab(self, tokens: list[str]) -> None:
        """Key every vocabulary token; the hash seed is bumped until no two long tokens share a key."""
        arr = pa.array(tokens, type=pa.string())
        data, offsets = _utf8(arr)
        self._vwords = _words(data)
        self._vstart = offsets[:-1].astype(np.int64)
        self._vlen = np.diff(offsets).astype(np.int64)
        for self._seed in range(64):  # a 62-bit hash: a second seed is already rare
            keys = _keys(self._vwords, self._vstart, self._vlen, self._seed)[0]
            if np.unique(keys).size == keys.size:
                break
        else:
            raise RuntimeError("vocabulary token keys keep colliding: the key function is broken")
        self._vocab = IntMap(keys, np.arange(keys.size, dtype=np.int64), spare_bits=2)  # ~40% of parts miss

    def _token_ids(self, data: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
        """Vocabulary id of every part (-1 if no query has it); hashed ones are checked byte by byte."""
        keys, long, chunks = _keys(_words(data), start, length, self._seed)
        ids = self._vocab.get(keys)
        if long.size:
            cand, (words, owner, at, mask) = ids[long], chunks
            ok = cand >= 0
            ok[ok] = self._vlen[cand[ok]] == length[long[ok]]
            check = np.flatnonzero(ok[owner])  # same length: compare each 8-byte chunk
            theirs = self._vwords[self._vstart[cand[owner[check]]] + at[check]] & mask[check]
            ok[owner[check[theirs != words[check]]]] = False
            ids[long[~ok]] = -1
        return ids

    def match(self, text: str) -> list[int]:
        """Sorted unique ids of the queries matching one text."""
        return self.match_many([text])[0]

    def match_many(self, texts: Sequence[str]) -> list[list[int]]:
        """`[match(t) for t in texts]`, computed for the whole batch at once (best with ≥1k texts)."""
        n = len(texts)
        if n == 0:
            return []
        try:
            arr = pa.array(texts, type=pa.string())
        except pa.ArrowCapacityError:  # over 2 GiB of text in one batch: halve it
            half = n // 2
            return self.match_many(texts[:half]) + self.match_many(texts[half:])
        except UnicodeEncodeError:  # lone surrogates have no UTF-8: stand in a character no query has
            return self.match_many([_SURROGATE.sub(self._absent, t) for t in texts])
        data, offsets = _utf8(arr)
        start, length, last_tok = split_parts(data, offsets[1:].astype(np.int64))
        tok = self._token_ids(data, start, length)
        last = np.zeros(tok.size, dtype=bool)
        last[last_tok] = True  # a text's last token: no walk may step into the next text
        text_of = np.repeat(np.arange(n), np.diff(last_tok, prepend=-1))
        # Step 1 (one-token queries) over all positions at once, then walk the longer ones.
        qid = self._node_qid[tok]
        found = np.flatnonzero(qid >= 0)
        hit_text, hit_qid = [text_of[found]], [qid[found]]
        start = np.flatnonzero(self._has_child[tok] & ~last)
        node, end = tok[start], start
        while start.size:
            end = end + 1
            nxt = tok[end]
            ok = nxt >= 0
            start, node, end, nxt = start[ok], node[ok], end[ok], nxt[ok]
            child = self._edges.get((node << self._tok_bits) | nxt)
            ok = child >= 0
            start, node, end = start[ok], child[ok], end[ok]
            qid = self._node_qid[node]
            found = qid >= 0
            hit_text.append(text_of[start[found]])
            hit_qid.append(qid[found])
            go = self._has_child[node] & ~last[end]
            start, node, end = start[go], node[go], end[go]
        # Each walk step's hits are already in text order: a stable (merge) sort is much faster here.
        keys = np.sort((np.concatenate(hit_text) << self._qid_bits) | np.concatenate(hit_qid), kind="stable")
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if keys.size else keys  # unique
        text_ids, qids = keys >> self._qid_bits, keys & ((1 << self._qid_bits) - 1)
        offsets = np.searchsorted(text_ids, np.arange(n + 1)).tolist()
        with _gc_paused():  # many small acyclic lists: cyclic GC passes would only add cost
            values = self._qid_objects.take(qids).tolist()
            return [values[a:b] for a, b in zip(offsets, offsets[1:])]


def split_parts(data: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The interior parts of `spaced(text).split(" ")` for texts laid end to end in `data` (UTF-8,
    text i ends at byte ends[i]), as byte ranges: (start, length, index of each text's last part).

    Every separator byte ends a part; a mark ends a part, is a part, and starts the next one; a
    text's end ends its last part. So the parts are cut at "boundaries" (end, next start): a
    separator at d gives (d, d+1), a mark at d gives (d, d) and (d+1, d+1), a text end e gives (e, e).
    """
    is_sep = data == _SEPARATORS[0]
    for b in _SEPARATORS[1:]:
        is_sep |= data == b
    is_cut = is_sep.copy()
    for b in _MARKS:
        is_cut |= data == b
    cut = np.flatnonzero(is_cut)
    mark = ~is_sep[cut]
    marks_before = np.zeros(cut.size + 1, dtype=np.int64)
    np.cumsum(mark, out=marks_before[1:])
    cuts_before_end = np.searchsorted(cut, ends)  # cuts in earlier texts or this one
    ends_before_cut = np.cumsum(np.bincount(cuts_before_end, minlength=cut.size + 1)[:cut.size])
    # Position of each boundary in the ordered list: at equal positions a mark's second boundary
    # comes first (it closes the mark's own part), then a text end, then a cut starting there.
    at_cut = np.arange(cut.size) + marks_before[:-1] + ends_before_cut
    at_end = cuts_before_end + marks_before[cuts_before_end] + np.arange(ends.size)
    total = cut.size + int(marks_before[-1]) + ends.size
    stop, nxt = np.empty(total, dtype=np.int64), np.empty(total, dtype=np.int64)
    stop[at_cut], nxt[at_cut] = cut, cut + ~mark
    marks = np.flatnonzero(mark)
    after_mark, past = at_cut.take(marks) + 1, cut.take(marks) + 1
    stop[after_mark], nxt[after_mark] = past, past
    stop[at_end], nxt[at_end] = ends, ends
    start = np.empty(total, dtype=np.int64)
    start[0], start[1:] = 0, nxt[:-1]
    return start, stop - start, at_end


def _utf8(arr: pa.StringArray) -> tuple[np.ndarray, np.ndarray]:
    """A fresh (offset 0) Arrow string array's UTF-8 bytes and int32 offsets, zero-copy."""
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1)
    buf = arr.buffers()[2]
    data = np.frombuffer(buf, dtype=np.uint8, count=int(offsets[-1])) if buf is not None else np.zeros(0, np.uint8)
    return data, offsets


def _words(data: np.ndarray) -> np.ndarray:
    """w[i] = the 8 bytes from byte i on, little-endian, zero past the end (a stride-1 view)."""
    pad = np.zeros(data.size + 8, dtype=np.uint8)
    pad[:data.size] = data
    return np.ndarray((data.size + 1,), dtype="<u8", buffer=pad, strides=(1,))


def _keys(words: np.ndarray, start: np.ndarray, length: np.ndarray, seed: int):
    """64-bit key of each part: its bytes and length for ≤ 7 bytes (exact), else a hash of its
    8-byte chunks tagged with bit 62. Also the long parts' indices and chunks (words, owner, chunk
    offset, mask) for checking a hash hit."""
    keys = words[start]
    keys &= _MASKS.take(np.minimum(length, 8))
    keys |= (length << 56).view(np.uint64)  # garbage above 7 bytes: those keys are replaced below
    long = np.flatnonzero(length > _SHORT)
    chunks = None
    if long.size:
        n_chunks = (length[long] + 7) >> 3
        first = np.cumsum(n_chunks) - n_chunks
        owner = np.repeat(np.arange(long.size), n_chunks)
        at = (np.arange(owner.size) - first[owner]) * 8
        mask = _MASKS[np.minimum(length[long][owner] - at, 8)]
        chunk_words = words[start[long][owner] + at] & mask
        h = _mix(chunk_words ^ _mix(at.astype(np.uint64) + np.uint64(seed)))
        h = _mix(np.add.reduceat(h, first) ^ length[long].astype(np.uint64))
        keys[long] = (h >> np.uint64(2)) | _LONG_TAG
        chunks = (chunk_words, owner, at, mask)
    return keys.view(np.int64), long, chunks


def _mix(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser (wrapping uint64 arithmetic)."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h
class IntMap:
    """A read-only hash map from non-negative int64 keys to int64 values, looked up vectorised
    (open addressing, linear probing: one gather of keys and one of values for most keys, instead
    of a binary search's ~20 cache misses). `spare_bits` sets the load: ≤ 1/2 with 1, ≤ 1/4 with 2
    (fewer second probes for a map probed mostly with absent or many keys)."""

    _MULT = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing

    def __init__(self, keys: np.ndarray, values: np.ndarray, spare_bits: int = 1):
        self._bits = max(2, len(keys).bit_length() + spare_bits)
        self._mask = (1 << self._bits) - 1
        self._keys = np.full(1 << self._bits, -1, dtype=np.int64)
        self._values = np.full(1 << self._bits, -1, dtype=np.int64)
        pending, slot = np.arange(len(keys)), self._slot(keys)
        while pending.size:
            empty = self._keys[slot] == -1
            taken, first = np.unique(slot[empty], return_index=True)  # one winner per free slot
            winners = pending[empty][first]
            self._keys[taken], self._values[taken] = keys[winners], values[winners]
            placed = np.zeros(len(keys), dtype=bool)
            placed[winners] = True
            left = ~placed[pending]
            pending, slot = pending[left], (slot[left] + 1) & self._mask

    def _slot(self, keys: np.ndarray) -> np.ndarray:
        slot = keys.astype(np.int64, copy=False).view(np.uint64) * self._MULT
        slot >>= np.uint64(64 - self._bits)
        return slot.view(np.int64)

    def get(self, keys: np.ndarray) -> np.ndarray:
        """Value of each key, -1 where absent."""
        slot = self._slot(keys)
        found = self._keys.take(slot)
        out = self._values.take(slot)
        miss = found != keys
        np.putmask(out, miss, -1)
        todo = np.flatnonzero(miss & (found != -1))  # a key that may sit further on
        slot = slot[todo]
        while todo.size:
            slot = (slot + 1) & self._mask
            found = self._keys.take(slot)
            hit = found == keys[todo]
            out[todo[hit]] = self._values.take(slot[hit])
            more = ~hit & (found != -1)
            todo, slot = todo[more], slot[more]
        return out


@contextmanager
def _gc_paused():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
