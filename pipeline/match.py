"""MetaCLIP sub-string matching, batched and vectorised: a token trie walked with NumPy.

Semantics are exactly MetaCLIP's: query q matches text t when `" " + q + " "` is a sub-string of
`S = spaced(t)` (openwit.pipeline.text.spaced); case-sensitive. Because the match is delimited by
spaces on both sides, that holds exactly when `q.split(" ")` equals a run of consecutive *interior*
parts of `S.split(" ")` (the parts between two spaces; empty parts included, so queries with odd
spacing behave as in MetaCLIP). So the automaton is a trie over token ids instead of characters.

MetaCLIP scans each text with a character Aho-Corasick automaton and gathers matches in a Python
loop per match. Here a whole batch is spaced and split by Arrow kernels (two regex passes and one
split), its distinct tokens are mapped to vocabulary ids with one hash join, and the trie is walked
for every start position at once, one NumPy step per query length (edges in a vectorised hash map).
Only a list slice per text is left in Python. Query strings are unique (queries.parquet contract).
"""
from __future__ import annotations

import gc
import re
from contextlib import contextmanager
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_PUNCTS_RE = r"([,.;:?!`])"  # MetaCLIP pads these seven with spaces
_SURROGATE = re.compile("[\ud800-\udfff]")
_CHARS_TO_SPACE = ("\t", "\n", "\r")


class Matcher:
    """Trie over the queries' tokens; `match_many(texts)` gives each text's sorted unique query ids."""

    def __init__(self, queries: Sequence[str]):
        vocab: dict[str, int] = {}
        edges: dict[tuple[int, int], int] = {}  # (parent node, token id) -> child node
        terminal: dict[int, int] = {}           # node -> query id
        token_lists = []
        for qid, q in enumerate(queries):
            if any(c in q for c in _CHARS_TO_SPACE):
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
        self._vocab_array = pa.array(list(vocab), type=pa.string())  # token id = position
        used = set().union(*vocab)
        self._absent = next(chr(c) for c in range(0xE000, 0x110000) if chr(c) not in used)
        self._tok_bits = max(n_vocab, 1).bit_length()   # edge key = parent << tok_bits | token
        self._qid_bits = max(len(queries), 1).bit_length()  # hit key = text << qid_bits | query
        # One spare entry at the end: token id -1 (no query has it) indexes it and finds nothing.
        self._node_qid = np.full(next_node + 1, -1, dtype=np.int64)
        self._node_qid[list(terminal)] = list(terminal.values())
        self._has_child = np.zeros(next_node + 1, dtype=bool)
        self._has_child[[p for p, _ in edges]] = True
        self._edges = IntMap(np.array([(p << self._tok_bits) | t for p, t in edges], dtype=np.int64),
                             np.array(list(edges.values()), dtype=np.int64))

    def _token_ids(self, tokens: pa.Array) -> np.ndarray:
        """Vocabulary id of every token (-1 if no query has it). The batch's distinct tokens are
        found by hashing the batch; the vocabulary is then probed against that small set (Arrow
        hashes its value set on every call, so hashing the big vocabulary each batch would cost more)."""
        coded = tokens.dictionary_encode()
        where = pc.index_in(self._vocab_array, value_set=coded.dictionary)
        valid = where.is_valid().to_numpy(zero_copy_only=False)
        ids = np.full(len(coded.dictionary), -1, dtype=np.int64)
        ids[where.to_numpy(zero_copy_only=False)[valid].astype(np.int64)] = np.flatnonzero(valid)
        return ids[coded.indices.to_numpy()]

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
        # MetaCLIP's spacing in two regex passes over the whole batch (one for the marks, one for
        # tab/newline when the batch has any; a memchr over the buffer is cheaper than a no-op pass).
        arr = pc.replace_substring_regex(arr, _PUNCTS_RE, r" \1 ")
        data = bytes(arr.buffers()[2] or b"")
        if b"\t" in data or b"\n" in data or b"\r" in data:
            arr = pc.replace_substring_regex(arr, "[\t\n\r]", " ")
        # spaced(t) = " " + arr[i] + " ": its interior parts are exactly arr[i].split(" ").
        parts = pc.split_pattern(arr, " ")
        bounds = parts.offsets.to_numpy()
        tok = self._token_ids(parts.flatten())
        text_of = np.repeat(np.arange(n), np.diff(bounds))
        last = np.zeros(tok.size, dtype=bool)
        last[bounds[1:] - 1] = True  # a text's last token: no walk may step into the next text
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
            values = qids.tolist()
            return [values[a:b] for a, b in zip(offsets, offsets[1:])]


class IntMap:
    """A read-only hash map from non-negative int64 keys to int64 values, looked up vectorised
    (open addressing, linear probing, load ≤ 1/2: one or two gathers per key instead of a binary
    search's ~20 cache misses)."""

    _MULT = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing

    def __init__(self, keys: np.ndarray, values: np.ndarray):
        self._bits = max(2, (2 * len(keys)).bit_length())
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
        return ((keys.astype(np.uint64) * self._MULT) >> np.uint64(64 - self._bits)).astype(np.int64)

    def get(self, keys: np.ndarray) -> np.ndarray:
        """Value of each key, -1 where absent."""
        out = np.full(keys.size, -1, dtype=np.int64)
        todo, slot = np.arange(keys.size), self._slot(keys)
        while todo.size:
            found = self._keys[slot]
            hit = found == keys[todo]
            out[todo[hit]] = self._values[slot[hit]]
            more = ~hit & (found != -1)
            todo, slot = todo[more], (slot[more] + 1) & self._mask
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
