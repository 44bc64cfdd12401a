"""Bigram pointwise mutual information, NLTK's definition (pure).

NLTK's `BigramAssocMeasures.pmi(n_ii, (n_ix, n_xi), n_xx)` is
`log2(n_ii * n_xx) - log2(n_ix * n_xi)`, and `BigramCollocationFinder` passes the word
frequencies as `n_ix`, `n_xi` and the total word count (`word_fd.N()`) as `n_xx`. openwit uses
the same numbers: n_ii = the bigram's count, n_ix / n_xi = unigram counts of its words,
n_xx = the total number of tokens read.
"""
from __future__ import annotations

import math


def pmi(n_ii: int, n_ix: int, n_xi: int, n_xx: int) -> float:
    """log2(n_ii·N) − log2(n_ix·n_xi), as nltk.metrics.BigramAssocMeasures.pmi."""
    return math.log2(n_ii * n_xx) - math.log2(n_ix * n_xi)
