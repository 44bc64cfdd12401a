"""Caption tokenizer on HF `tokenizers` (Rust): CLIP's BPE, or a byte-level BPE trained on the captions.

Both kinds share one layout so a CLIP text tower works unchanged: the 512 byte tokens (each byte alone
and with the `</w>` end-of-word suffix, in CLIP's bytes→unicode order), the learned merges, then
`<|startoftext|>` and `<|endoftext|>` as the two highest ids (the text tower may pool at `argmax`).
Every caption becomes exactly `context_length` ids: start token, BPE ids, end token, zero padding;
too-long captions are cut so the end token is kept, as CLIP's `tokenize` does.

Text cleanup follows CLIP: ftfy.fix_text, html.unescape twice, whitespace collapse, lowercase.
ftfy is slow, so it runs only on text where it can change something (non-ASCII, `&`, control chars);
on plain printable ASCII it is the identity. Batches are pre-tokenized in Python with CLIP's regex
and the `regex` module (as CLIP does); words go through the Rust BPE once and are cached.
The saved `tokenizer.json` holds the full pipeline (regex split, BPE, start/end template, padding)
for use outside openwit, minus ftfy/HTML cleanup, and with the special tokens as added tokens.
"""
from __future__ import annotations

import gzip
import html
import importlib.util
import json
import os
from typing import Iterable, Sequence

import fsspec
import ftfy
import numpy as np
import regex
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer

from openwit.common import layout
from openwit.common.errors import UserError
from openwit.loader.urls import open_url

SOT, EOT = "<|startoftext|>", "<|endoftext|>"
EOW = "</w>"
CONTEXT_LENGTH = 77
WORD_CACHE_SIZE = 1 << 20  # words; cleared when full (Zipf: the common words come right back)
# CLIP's pre-tokenization pattern, without the two special tokens: like open_clip 3.3, a literal
# "<|endoftext|>" in a caption is tokenized as text.
PRETOKEN_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def _byte_table() -> dict[int, str]:
    """CLIP/GPT-2's reversible byte → printable character mapping."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def bytes_to_unicode() -> list[str]:
    """CLIP/GPT-2's byte characters, in CLIP's vocabulary order (printable bytes first)."""
    table = _byte_table()
    printable = [b for b in range(256) if table[b] == chr(b)]
    return [table[b] for b in printable] + [table[b] for b in range(256) if table[b] != chr(b)]


def clean_caption(text: str) -> str:
    """CLIP's text cleanup (ftfy + double html.unescape + whitespace collapse + lowercase).

    ftfy runs only where it can change something: non-ASCII text, `&` (entities), or control and
    whitespace characters; on printable ASCII it is the identity, and it costs ~50 µs a caption.
    `str.split()` splits on exactly the characters `re`'s `\\s` matches.
    """
    if not (text.isascii() and text.isprintable() and "&" not in text):
        text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return " ".join(text.split()).lower()


def _build(tokens: Sequence[str], merges: Sequence[tuple[str, str]], context_length: int) -> Tokenizer:
    """Assemble a CLIP-layout tokenizer from merge-ordered tokens (without the special tokens)."""
    vocab = {tok: i for i, tok in enumerate(tokens)}
    vocab[SOT], vocab[EOT] = len(vocab), len(vocab) + 1
    tok = Tokenizer(models.BPE(vocab=vocab, merges=list(merges), end_of_word_suffix=EOW, unk_token=None))
    tok.normalizer = normalizers.Sequence([normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKEN_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.BPEDecoder(suffix=EOW)
    tok.add_special_tokens([SOT, EOT])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{SOT} $A {EOT}", special_tokens=[(SOT, vocab[SOT]), (EOT, vocab[EOT])])
    tok.enable_truncation(context_length)
    tok.enable_padding(length=context_length, pad_id=0, pad_token="!")
    return tok


def _base_tokens() -> list[str]:
    chars = bytes_to_unicode()
    return chars + [c + EOW for c in chars]


class CaptionTokenizer:
    """Batch caption → `[N, context_length]` int64 ids (start, BPE, end, zero padding)."""

    def __init__(self, tokenizer: Tokenizer, context_length: int = CONTEXT_LENGTH):
        self.tokenizer = tokenizer
        self.context_length = context_length
        tokenizer.enable_truncation(context_length)
        tokenizer.enable_padding(length=context_length, pad_id=0, pad_token="!")
        self.sot_id = tokenizer.token_to_id(SOT)
        self.eot_id = tokenizer.token_to_id(EOT)
        if self.sot_id is None or self.eot_id is None:
            raise UserError(f"tokenizer lacks {SOT} / {EOT}: not an openwit/CLIP tokenizer")
        self._fast = _fast_copy(tokenizer)
        self._pattern = regex.compile(PRETOKEN_PATTERN)
        self._seed = self._whole_words()
        self._words: dict[str, list[int]] = dict(self._seed)

    def _whole_words(self) -> dict[str, list[int]]:
        """word → ids for every vocabulary entry that is a whole word (`…</w>`) the pre-tokenizer can
        produce: the word cache starts with them, so a new tokenizer (each DataLoader worker, each
        epoch) does not send every common word to the BPE again. The ids come from the BPE model
        itself, one entry at a time on the entry's own byte-level text (~0.1 s for CLIP's 49k
        vocabulary, in this thread: no Rayon pool), so they are exactly what a miss would give."""
        back = {c: b for b, c in _byte_table().items()}
        model = self._fast.model
        seed = {}
        for token in self._fast.get_vocab():
            if not token.endswith(EOW) or len(token) == len(EOW):
                continue
            chars = token[: -len(EOW)]
            try:
                word = bytes(back[c] for c in chars).decode("utf-8")
            except (KeyError, UnicodeDecodeError):
                continue
            if self._pattern.fullmatch(word):
                seed[word] = [t.id for t in model.tokenize(chars)]
        return seed

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    @classmethod
    def from_clip_bpe(cls, path: str, context_length: int = CONTEXT_LENGTH) -> "CaptionTokenizer":
        """CLIP's own vocabulary from `bpe_simple_vocab_16e6.txt.gz` (ids equal CLIP's tokenizer)."""
        try:
            lines = gzip.decompress(_read(path)).decode("utf-8").split("\n")
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read CLIP BPE file {path}: {e}") from e
        merges = [tuple(line.split()) for line in lines[1: 49152 - 256 - 2 + 1]]
        tokens = _base_tokens() + ["".join(m) for m in merges]
        return cls(_build(tokens, merges, context_length), context_length)

    @classmethod
    def from_file(cls, path: str, context_length: int = CONTEXT_LENGTH) -> "CaptionTokenizer":
        """A `tokenizer.json` (as written by `save`); a `.txt.gz` path is read as CLIP's BPE file.
        Paths may be local or any URL the loader reads (gs://, s3://, http(s)://)."""
        if path.endswith(".gz"):
            return cls.from_clip_bpe(path, context_length)
        try:
            return cls(Tokenizer.from_str(_read(path).decode("utf-8")), context_length)
        except Exception as e:  # tokenizers raises plain Exception on bad JSON
            raise UserError(f"cannot load tokenizer {path}: {e}") from e

    @classmethod
    def train(cls, captions: Iterable[str], vocab_size: int = 32000,
              context_length: int = CONTEXT_LENGTH, min_frequency: int = 2) -> "CaptionTokenizer":
        """Train a byte-level BPE on `captions` with CLIP's cleanup, pre-tokenizer and layout."""
        if vocab_size < 512 + 2:
            raise UserError(f"--vocab-size must be at least 514 (the byte tokens + 2 specials), got {vocab_size}")
        scratch = _build(_base_tokens(), [], context_length)
        trainer = BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                             initial_alphabet=bytes_to_unicode(), end_of_word_suffix=EOW)
        scratch.train_from_iterator((clean_caption(c) for c in captions), trainer=trainer)
        model = json.loads(scratch.to_str())["model"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        # Same construction as CLIP's vocabulary: 512 byte tokens, then one token per merge, in order.
        tokens, kept = _base_tokens(), []
        seen = set(tokens)
        for m in merges:
            if len(tokens) >= vocab_size - 2:
                break
            kept.append(m)
            if "".join(m) not in seen:
                seen.add("".join(m))
                tokens.append("".join(m))
        return cls(_build(tokens, kept, context_length), context_length)

    def save(self, path: str) -> None:
        """Write `tokenizer.json` atomically (local, gs://, s3://)."""
        from openwit.common.atomic import atomic_write_text  # imports Beam: only when saving

        atomic_write_text(path, self.tokenizer.to_str())

    def encode(self, text: str) -> list[int]:
        """Ids of one caption without padding (start and end tokens included)."""
        ids = self([text])[0].tolist()
        return ids[: ids.index(self.eot_id) + 1]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_words": None}  # DataLoader workers start from the whole-word cache

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._words = dict(self._seed)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """`[len(texts), context_length]` int64 array of ids.

        Hot path (~2× the Rust pipeline's speed per core): pre-tokenize with CLIP's regex (the same
        `regex` module CLIP uses), look words up in a word → ids cache, and send only unseen words
        to the Rust BPE, in one batch. Start/end tokens and padding are set in NumPy.
        """
        words = [self._pattern.findall(clean_caption(t)) for t in texts]
        cache = self._words
        misses = list({w for ws in words for w in ws if w not in cache})
        if misses:
            if len(cache) + len(misses) > WORD_CACHE_SIZE:
                cache.clear()
                cache.update(self._seed)
            for w, enc in zip(misses, self._fast.encode_batch_fast(misses, add_special_tokens=False)):
                cache[w] = enc.ids
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        out[:, 0] = self.sot_id
        keep = self.context_length - 2
        for i, ws in enumerate(words):
            ids: list[int] = []
            for w in ws:
                ids += cache[w]
            ids = ids[:keep]
            out[i, 1: len(ids) + 1] = ids
            out[i, len(ids) + 1] = self.eot_id
        return out


def _fast_copy(tok: Tokenizer) -> Tokenizer:
    """A copy of `tok` for already pre-tokenized words: bytes→unicode mapping + BPE only."""
    spec = json.loads(tok.to_str())
    model = spec["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    fast = Tokenizer(models.BPE(vocab=model["vocab"], merges=merges, end_of_word_suffix=EOW, unk_token=None))
    fast.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    return fast  # no added tokens: a literal "<|endoftext|>" in a caption is text, as in CLIP


def _read(path: str) -> bytes:
    with open_url(path) as f:
        return f.read()


def _exists(path: str) -> bool:
    if "://" not in path:
        return os.path.exists(path)
    try:
        fs, inner = fsspec.core.url_to_fs(path)
        return fs.exists(inner)
    except Exception:  # missing filesystem package or unreachable store: not there
        return False


def _beside_shards(first_shard_url: str | None) -> str | None:
    """The `tokenizer.json` in the folder of the first shard (local or remote), if it has one."""
    if not first_shard_url or first_shard_url.startswith("pipe:"):
        return None
    if "://" in first_shard_url:
        return layout.tokenizer_path(first_shard_url.rsplit("/", 1)[0])
    return layout.tokenizer_path(os.path.dirname(os.path.abspath(first_shard_url)))


def default_tokenizer_path(first_shard_url: str | None = None) -> str | None:
    """Where a default tokenizer lives: $OPENWIT_TOKENIZER, `tokenizer.json` beside the shards (local
    or remote), $OPENWIT_CLIP_BPE, or the CLIP BPE file of an installed open_clip / clip package."""
    candidates = [os.environ.get("OPENWIT_TOKENIZER"), _beside_shards(first_shard_url)]
    candidates.append(os.environ.get("OPENWIT_CLIP_BPE"))
    for pkg in ("open_clip", "clip"):
        try:
            spec = importlib.util.find_spec(pkg)
        except (ImportError, ValueError):
            spec = None
        if spec and spec.origin:
            candidates.append(os.path.join(os.path.dirname(spec.origin), "bpe_simple_vocab_16e6.txt.gz"))
    return next((c for c in candidates if c and _exists(c)), None)


def load_tokenizer(spec: "str | CaptionTokenizer | None", first_shard_url: str | None = None,
                   context_length: int = CONTEXT_LENGTH) -> CaptionTokenizer:
    """A tokenizer from an object, a path (`tokenizer.json` or CLIP's `.txt.gz`) or the defaults."""
    if isinstance(spec, CaptionTokenizer):
        return spec
    path = spec or default_tokenizer_path(first_shard_url)
    if path is None:
        beside = _beside_shards(first_shard_url)
        looked = f"; looked for {beside}" if beside else ""
        raise UserError(f"no tokenizer{looked}: pass --tokenizer FILE (Python: tokenizer=PATH; tokenizer.json or "
                        "bpe_simple_vocab_16e6.txt.gz), put tokenizer.json beside the shards (openwit-loader "
                        "tokenizer train), or set OPENWIT_CLIP_BPE")
    return CaptionTokenizer.from_file(path, context_length)
