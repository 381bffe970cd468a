"""Generate the small English sentiment set shipped with the NLP domain (stdlib only, fixed seed).

Sentences are built from templates over a positive/negative lexicon of review words. What makes
the task more than a word count:

* negation flips a clause ("the plot was not very clever" is negative);
* in contrast sentences only one clause counts, and it is not always the last one
  ("although the acting was weak , the story was gripping" and
  "the story was gripping , even if the acting was weak" are both positive);
* fillers, intensifiers and a Zipf-like lexicon (some words are rare in training) add noise;
* 4% of the labels are flipped, as annotators disagree, so no model reaches 100%.

Run from the repository root: ``python scripts/make_text_dataset.py``. It writes
``domains/nlp/data/sentiment_{train,validation,test}.csv`` with columns ``text,label``
(1 positive, 0 negative); the same seed always gives the same files.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

SEED = 20240601
SPLITS = {"train": 2000, "validation": 300, "test": 300}
LABEL_NOISE = 0.04
OUT = Path(__file__).resolve().parent.parent / "domains" / "nlp" / "data"

POSITIVE = """good great excellent wonderful brilliant superb delightful charming moving gripping hilarious
clever fresh beautiful stunning enjoyable engaging touching witty solid memorable remarkable terrific
fantastic lovely thrilling smart heartfelt powerful refreshing entertaining compelling impressive
inventive elegant satisfying""".split()
NEGATIVE = """bad awful terrible boring dull tedious predictable clumsy bland lifeless mediocre forgettable weak
painful messy shallow pointless dreadful tiresome lazy annoying confusing disappointing flat stale
sloppy hollow uninspired cliched overlong pretentious unfunny dismal awkward sluggish incoherent""".split()
POSITIVE_PHRASES = ["worth watching", "a must see", "worth every minute", "a real treat", "a joy to watch",
                    "time well spent", "a small triumph", "worth the ticket"]
NEGATIVE_PHRASES = ["a waste of time", "a total mess", "a chore to sit through", "a letdown",
                    "a missed opportunity", "a disaster", "hard to sit through", "a complete failure"]
SUBJECTS = ["the movie", "this film", "the plot", "the acting", "the script", "the soundtrack", "the ending",
            "the cast", "the dialogue", "the direction", "the story", "the cinematography", "the pacing",
            "the characters", "the lead performance", "the sequel", "the humor", "the visuals",
            "the screenplay", "the final act", "the score", "the premise"]
VERBS = [("was", "was not"), ("is", "is not"), ("felt", "never felt"), ("seemed", "hardly seemed"),
         ("turned out to be", "was far from"), ("looked", "did not look"), ("was", "was anything but"),
         ("is", "is never")]
INTENSIFIERS = ["very", "really", "truly", "quite", "extremely", "incredibly", "remarkably", "rather",
                "genuinely", "so", "utterly", "pretty", "fairly", "somewhat"]
PREFIXES = ["honestly ,", "to be fair ,", "in my opinion ,", "if you ask me ,", "frankly ,",
            "all things considered ,", "i have to say", "i think", "overall ,", "for what it is worth ,",
            "after the first hour ,", "we saw it last weekend and"]
SUFFIXES = ["for the most part", "at times", "from start to finish", "in the end", "by any standard",
            "if i am honest", "most of the time", "on the whole"]
RECOMMEND = [("i would recommend it to anyone", "i would not recommend it to anyone"),
             ("i would happily watch it again", "i would never watch it again"),
             ("i can not wait for the next one", "i want my money back"),
             ("my friends loved it", "my friends walked out")]


def zipf_choice(rng: random.Random, words: list[str]) -> str:
    """Early words are common, late ones rare (a few times in the training set)."""
    return rng.choices(words, weights=[1 / (i + 1) ** 0.9 for i in range(len(words))])[0]


def clause(rng: random.Random, polarity: int) -> str:
    """A clause whose sentiment is ``polarity`` (+1 or -1)."""
    negate = rng.random() < 0.3
    word_polarity = -polarity if negate else polarity
    kind = rng.random()
    if kind < 0.7:
        verb, negated_verb = rng.choice(VERBS)
        adjective = zipf_choice(rng, POSITIVE if word_polarity > 0 else NEGATIVE)
        intensifier = rng.choice(INTENSIFIERS) + " " if rng.random() < 0.4 else ""
        return f"{rng.choice(SUBJECTS)} {negated_verb if negate else verb} {intensifier}{adjective}"
    if kind < 0.9:
        phrase = rng.choice(POSITIVE_PHRASES if word_polarity > 0 else NEGATIVE_PHRASES)
        subject = rng.choice(["it", "the whole thing", "this one", rng.choice(SUBJECTS)])
        return f"{subject} {'was not' if negate else 'was'} {phrase}"
    good, bad = rng.choice(RECOMMEND)
    return good if polarity > 0 else bad


def sentence(rng: random.Random) -> tuple[str, int]:
    polarity = rng.choice([1, -1])
    form = rng.random()
    if form < 0.55:
        text = clause(rng, polarity)
        if rng.random() < 0.4:
            text = f"{rng.choice(PREFIXES)} {text}"
        if rng.random() < 0.25:
            text = f"{text} {rng.choice(SUFFIXES)}"
    elif form < 0.85:
        # Only the main clause counts; the other one mostly disagrees with it.
        other = clause(rng, -polarity if rng.random() < 0.75 else polarity)
        main = clause(rng, polarity)
        text = rng.choice([f"{other} , but {main}", f"although {other} , {main}",
                           f"{main} , even if {other}", f"{other} ; still , {main}"])
    else:
        text = f"{clause(rng, polarity)} and {clause(rng, polarity)}"
    return f"{text} {rng.choice(['.', '.', '.', '!'])}", int(polarity > 0)


def generate(seed: int = SEED) -> dict[str, list[tuple[str, int]]]:
    rng = random.Random(seed)
    total = sum(SPLITS.values())
    seen: set[str] = set()
    rows: list[tuple[str, int]] = []
    while len(rows) < total:  # unique sentences, so no test sentence is also a training sentence
        text, label = sentence(rng)
        if text not in seen:
            seen.add(text)
            rows.append((text, 1 - label if rng.random() < LABEL_NOISE else label))
    out, start = {}, 0
    for split, n in SPLITS.items():
        out[split] = rows[start:start + n]
        start += n
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for split, rows in generate(args.seed).items():
        path = args.out / f"sentiment_{split}.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["text", "label"])
            writer.writerows(rows)
        positive = sum(label for _, label in rows)
        print(f"{path}: {len(rows)} rows, {positive} positive, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
