"""Counting words: what a word is, and how ties are ordered."""

import collections
import re

WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def top_words(text, n):
    """The n most frequent words of text, lower-cased, as (word, count) pairs.

    Ties go in alphabetical order, so the same text always gives the same list.
    """
    counts = collections.Counter(word.lower() for word in WORD.findall(text))
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]
