"""WordNet 3.0 synset entries by MetaCLIP's rule, read straight from the database files.

MetaCLIP took each synset's NLTK name (`dog.n.01`: its first lemma, lower-cased), cut it at the
first ".", and turned "_" into spaces. The first lemma is the 5th field of a line in
`data.{noun,verb,adj,adv}`; adjective lemmas may carry a syntactic marker (`galore(ip)`), which
NLTK strips from names. With the numerals "0"…"99" this gives MetaCLIP's 86,654 entries.
"""
from __future__ import annotations

import re

from apache_beam.io.filesystems import FileSystems

from openwit.common.errors import UserError

POS_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
DEFAULT_DIR = "/usr/share/wordnet"
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")


def entry_from_lemma(lemma: str) -> str:
    """MetaCLIP's rule for one synset's first lemma: lower-case, cut at the first '.', '_' → ' '."""
    return _ADJ_MARKER.sub("", lemma).lower().split(".", 1)[0].replace("_", " ")


def first_lemmas(lines) -> list[str]:
    """First lemma of every synset line of one data file (license header lines start with spaces)."""
    out = []
    for line in lines:
        if not line or line[0] in " \t" or not line[0].isdigit():
            continue
        fields = line.split(" ", 5)
        if len(fields) < 5:
            continue
        out.append(fields[4])
    return out


def read_wordnet(wordnet_dir: str = DEFAULT_DIR) -> list[str]:
    """Synset entries in file order (noun, verb, adj, adv), duplicates and empties removed."""
    base = wordnet_dir.rstrip("/")
    if not FileSystems.exists(base):
        raise UserError(f"{base}: WordNet folder not found — install Debian wordnet-base or pass --wordnet-dir")
    seen: dict[str, None] = {}
    for name in POS_FILES:
        path = f"{base}/{name}"
        if not FileSystems.exists(path):
            raise UserError(f"{path}: missing — {base} is not a WordNet 3.0 database folder (needs {', '.join(POS_FILES)})")
        with FileSystems.open(path) as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        lemmas = first_lemmas(lines)
        if not lemmas:
            raise UserError(f"{path}: no synset lines — not a WordNet data file")
        for lemma in lemmas:
            entry = entry_from_lemma(lemma)
            if entry.strip():
                seen.setdefault(entry, None)
    return list(seen)
