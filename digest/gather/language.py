"""The language of a story that declares none, told from its text, or "" when unsure.

A story's `lang` (WCAG 3.1.2) comes from its entry, its feed or its page; a feed that
declares no language may still mix English, Korean and Arabic headlines, each of which a
screen reader should read in its own voice. So at gather time, and only for a story that
declares nothing, the language is inferred from its title and summary:

- a script that one language alone is written in names it (Hangul → ko, kana → ja, Thai,
  Hebrew, Greek, Georgian, Armenian) once it holds a third of the letters: an English
  sentence hardly ever quotes Hangul, while a Korean headline often quotes an English
  brand, and is still Korean;
- else the text's main script (Latin, Cyrillic, Arabic, Han without kana, ...) must hold
  most of its letters, and py3langid (the maintained langid.py that trafilatura uses)
  says which language; its answer is kept only for a long enough text and a high enough
  probability.

A wrong `lang` is worse than none (the reader hears English in a Korean voice), so every
doubt gives "": too few letters, no script in the majority, a detector that is not sure.
The limits below were tuned on the feeds and article pages of tests/data and the shared
corpora, with their declared languages as the truth: see tests/gather/test_language.py.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections import Counter
from typing import Any

#: Letters (weighted, see _WEIGHT) a text needs before the detector is asked: a bare
#: headline of a Latin or Cyrillic script is too short to tell Spanish from Portuguese.
MIN_LETTERS = 30
#: The detector's probability (normalized over its languages, a language's dialects
#: summed) below which its answer is dropped.
MIN_PROBABILITY = 0.9
#: Weighted letters a one-language script needs: two Hangul syllables, four Greek letters.
MIN_SCRIPT_LETTERS = 4
#: The share of a text's weighted letters a one-language script needs to name it.
SCRIPT_SHARE = 1 / 3
#: The share the main script of any other text needs before the detector is asked.
MAJORITY = 0.6
#: Enough of a long page's text to tell its language; the rest would only cost time.
MAX_CHARS = 2000

# Code point ranges (start, end inclusive) of the scripts that matter here; any other
# letter counts as "other" (Devanagari, Bengali, ... go to the detector as they are).
_RANGES = sorted([
    (0x0041, 0x005A, "Latin"), (0x0061, 0x007A, "Latin"), (0x00C0, 0x024F, "Latin"),
    (0x1E00, 0x1EFF, "Latin"),
    (0x0370, 0x03FF, "Greek"), (0x1F00, 0x1FFF, "Greek"),
    (0x0400, 0x052F, "Cyrillic"),
    (0x0530, 0x058F, "Armenian"),
    (0x0590, 0x05FF, "Hebrew"),
    (0x0600, 0x06FF, "Arabic"), (0x0750, 0x077F, "Arabic"), (0x08A0, 0x08FF, "Arabic"),
    (0xFB50, 0xFDFF, "Arabic"), (0xFE70, 0xFEFF, "Arabic"),
    (0x0E00, 0x0E7F, "Thai"),
    (0x10A0, 0x10FF, "Georgian"),
    (0x1100, 0x11FF, "Hangul"), (0x3130, 0x318F, "Hangul"), (0xAC00, 0xD7AF, "Hangul"),
    (0x3040, 0x30FF, "Kana"), (0x31F0, 0x31FF, "Kana"), (0xFF66, 0xFF9F, "Kana"),
    (0x3400, 0x4DBF, "Han"), (0x4E00, 0x9FFF, "Han"), (0xF900, 0xFAFF, "Han"),
    (0x20000, 0x3134F, "Han"),
])
_STARTS = [start for start, _, _ in _RANGES]

#: Scripts that name their language (Hebrew: Yiddish is too rare in news to doubt it).
SCRIPT_LANGUAGES = {"Hangul": "ko", "Kana": "ja", "Thai": "th", "Hebrew": "he",
                    "Greek": "el", "Georgian": "ka", "Armenian": "hy"}

# A Hangul syllable or a Han or kana character holds about what two alphabet letters do:
# counted as one, the English brand in a Korean headline would outweigh the Korean.
_WEIGHT = {"Hangul": 2, "Kana": 2, "Han": 2}

# The detector's dialects and varieties, folded into the language a reader's voice
# knows: its Moroccan and Egyptian Arabic are news in Arabic, its Wu and Cantonese are
# short Chinese text, Nynorsk is Norwegian.
_FOLD = {"ary": "ar", "arz": "ar", "wuu": "zh", "yue": "zh", "nn": "no", "uzs": "uz",
         "sdh": "ku", "hbo": "he", "grc": "el"}
_NO_LANGUAGE = "zxx"  # the detector's "no linguistic content"

_URL = re.compile(r"\S+://\S+|www\.\S+|\S+@\S+\.\w+")


def infer_language(title: str, summary: str = "") -> str:
    """The language of a story from its title and summary ("ko", "en", "ar"), or "" when
    the text is too short or too mixed, or the detector is not sure."""
    text = _URL.sub(" ", f"{title}\n{summary[:MAX_CHARS]}")
    scripts = _scripts(text)
    total = sum(scripts.values())
    if not total:
        return ""
    named = [(weight, script) for script, weight in scripts.items()
             if script in SCRIPT_LANGUAGES]
    if named and (best := max(named))[0] >= SCRIPT_SHARE * total:
        weight, script = best
        return SCRIPT_LANGUAGES[script] if weight >= MIN_SCRIPT_LETTERS else ""
    script, weight = scripts.most_common(1)[0]
    if weight < MAJORITY * total or total < MIN_LETTERS:
        return ""
    language, probability = _detect(text)
    if probability < MIN_PROBABILITY or language == _NO_LANGUAGE:
        return ""
    return language


def _scripts(text: str) -> Counter[str]:
    """The text's letters by script, weighted (_WEIGHT); Han counts as kana in a text
    with kana, Japanese being written in both."""
    counts: Counter[str] = Counter()
    for char in text:
        if char.isalpha():
            counts[_script(ord(char))] += 1
    if counts["Kana"]:
        counts["Kana"] += counts.pop("Han", 0)
    return Counter({script: n * _WEIGHT.get(script, 1) for script, n in counts.items() if n})


def _script(code: int) -> str:
    i = bisect.bisect_right(_STARTS, code) - 1
    if i >= 0 and code <= _RANGES[i][1]:
        return _RANGES[i][2]
    return "other"


def _detect(text: str) -> tuple[str, float]:
    """The detector's likeliest language and its probability, dialects folded in."""
    folded: Counter[str] = Counter()
    for language, probability in _identifier().rank(text):
        folded[_FOLD.get(language, language)] += probability
    return folded.most_common(1)[0]


@functools.cache
def _identifier() -> Any:
    """py3langid's model with normalized probabilities, loaded once (about 2 s) on first
    use: most gathers never need it. It is read-only once loaded, so threads share it."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
