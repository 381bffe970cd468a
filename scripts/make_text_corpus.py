"""Generate the small English corpus shipped for causal language modelling (stdlib only, fixed seed).

Each line is one short passage (a few sentences), lowercase, with punctuation as separate tokens
("the cat sat on the mat ."). A probabilistic grammar over a Zipf-weighted lexicon of roughly 700
words makes it, so a tiny transformer trained from scratch for a few hundred steps gets a
perplexity far below the unigram baseline, and context helps beyond the previous word:

* subject-verb agreement across adjectives, prepositional phrases and relative clauses
  ("the cats that the farmer feeds are hungry"), and "a" / "an" before vowels;
* selectional structure: animals make their own sound ("the owl hoots"), people work at their
  place, verbs take fitting objects ("eats the ripe pears", not "eats the lamp");
* narratives where later sentences refer back to a name, a pronoun of the right gender and number,
  or an object introduced earlier on the same line ("... found a shiny key . she took the key home");
* recall ("where is the cup ? the cup is under the table ."), counting ("one , two , three"),
  days and months in order, small sums, and counts that agree with the noun ("three foxes").

Run from the repository root: ``python scripts/make_text_corpus.py``. It writes
``domains/nlp/data/corpus_{train,validation,test}.txt`` (one passage a line, UTF-8, for
``datasets.load_dataset("text", data_files=...)``) and prints the line and token counts and the
vocabulary size. The splits come from one distribution through disjoint random streams (seeded by
seed and split name); the same seed always gives byte-identical files.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from pathlib import Path

SEED = 20240615
SPLITS = {"train": 4000, "validation": 400, "test": 400}
OUT = Path(__file__).resolve().parent.parent / "domains" / "nlp" / "data"

NUMBERS = """zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
sixteen seventeen eighteen nineteen twenty""".split()
DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
MONTHS = "january february march april may june july august september october november december".split()
MALE = """max sam tom ben jack leo noah finn hugo jake luke omar paul theo adam carl eric oscar felix henry
victor simon peter david""".split()
FEMALE = """anna lily emma lucy mia rosa ella grace ivy kate maya nina ruby sara zoe bella dora fiona
clara alice julia hannah olivia wendy""".split()

# Animals with the sound (or typical action) they make: "sing:sang" gives an irregular past.
ANIMALS = [("dog", "bark"), ("cat", "purr"), ("bird", "sing:sang"), ("horse", "neigh"), ("cow", "moo"),
           ("fox:foxes", "yelp"), ("duck", "quack"), ("owl", "hoot"), ("mouse:mice", "squeak"),
           ("rabbit", "hop:hopped"), ("frog", "croak"), ("pig", "grunt"), ("goat", "bleat"),
           ("bear", "growl"), ("wolf:wolves", "howl"), ("lion", "roar"), ("bee", "buzz"),
           ("monkey", "chatter"), ("snake", "hiss"), ("chicken", "cluck"), ("tiger", "roar"),
           ("squirrel", "chatter"), ("turtle", "crawl"), ("ant", "march")]
# People with a gender for pronouns (None: either, fixed per passage) and the place they work at.
PEOPLE = [("boy", "m", "school"), ("girl", "f", "school"), ("farmer", None, "farm"),
          ("teacher", None, "school"), ("man:men", "m", "market"), ("woman:women", "f", "market"),
          ("baker", None, "bakery"), ("doctor", None, "hospital"), ("king", "m", "castle"),
          ("queen", "f", "castle"), ("sailor", None, "harbor"), ("child:children", None, "park"),
          ("fisherman:fishermen", "m", "lake"), ("cook", None, "kitchen"), ("nurse", None, "hospital"),
          ("painter", None, "village"), ("singer", None, "city"), ("student", None, "library"),
          ("soldier", None, "tower"), ("hunter", None, "forest"), ("pilot", None, "station"),
          ("musician", None, "city"), ("writer", None, "library"), ("miller", None, "mill")]
OBJECTS = """ball book box:boxes cup hat key kite lamp letter map pen ring rope stone toy bag basket bell boat
bottle candle chair clock coin drum flag flower gift knife:knives mirror picture shoe stick table
ticket umbrella watch:watches bicycle blanket bucket feather shell sword brush coat glove ladder
necklace pillow plate scarf spoon whistle""".split()
FOODS = """apple cake cookie egg carrot pie sandwich:sandwiches orange pear plum banana potato:potatoes
tomato:tomatoes nut berry:berries grape muffin biscuit lemon peach:peaches onion cherry:cherries
pancake melon""".split()
# Places with the preposition that goes with them.
PLACES = [("garden", "in"), ("house", "in"), ("river", "by"), ("forest", "in"), ("park", "in"),
          ("kitchen", "in"), ("school", "at"), ("market", "at"), ("village", "in"), ("farm", "on"),
          ("hill", "on"), ("lake", "by"), ("city", "in"), ("field", "in"), ("beach", "on"),
          ("bridge", "on"), ("barn", "in"), ("library", "at"), ("castle", "in"), ("island", "on"),
          ("mountain", "on"), ("valley", "in"), ("station", "at"), ("harbor", "at"), ("meadow", "in"),
          ("pond", "by"), ("tower", "in"), ("bakery", "at"), ("hospital", "at"), ("cave", "in"),
          ("mill", "at"), ("museum", "at"), ("road", "on"), ("palace", "in"), ("orchard", "in")]
SPOTS = ["under the table", "on the shelf", "in the box", "behind the door", "under the bed",
         "in the basket", "next to the lamp", "on the chair", "in the drawer", "behind the curtain",
         "under the stairs", "in the cupboard", "on the windowsill", "in the bag", "beside the clock"]

SIZE_ADJ = "big small little tiny huge tall old young".split()
COLORS = "red blue green yellow black white brown gray pink purple golden silver".split()
FOOD_COLORS = "red green yellow brown".split()
ANIMATE_ADJ = """happy hungry tired brave clever kind sleepy busy friendly quiet curious proud gentle lazy
shy wise noisy lonely cheerful grumpy""".split()
EMOTIONS = "happy glad proud surprised excited sad worried scared tired calm".split()
OBJECT_ADJ = """shiny heavy broken soft round wooden strange beautiful dusty empty tiny precious rusty
magic""".split()
FOOD_ADJ = "fresh sweet ripe warm delicious juicy crunchy sour tasty soft".split()
INTENSIFIERS = ["very", "really", "quite", "so", "rather", "extremely"]

# Verbs, as "base" or "base:past" (third person and regular pasts follow English spelling rules).
INTRANSITIVE = """run:ran sleep:slept dance jump walk swim:swam laugh play sit:sat wait rest smile work
climb shout wander hide:hid""".split()
WITH_OBJECT = """find:found carry hold:held lose:lost buy:bought want see:saw take:took clean fix keep:kept
drop:dropped paint bring:brought like""".split()
WITH_FOOD = "eat:ate cook like share want buy:bought bake wash cut:cut pick".split()
WITH_ANIMATE = """see:saw watch help follow chase meet:met call visit love feed:fed like find:found""".split()
TIMES = ["every morning", "every evening", "every day", "at night", "in the afternoon", "after lunch",
         "on sunday", "in the summer", "in the winter", "before breakfast"]
VOWELS = "aeiou"


def plural_of(spec: str) -> tuple[str, str]:
    """(singular, plural) of a noun spec, "noun" or "noun:irregular plural"."""
    sing, _, plur = spec.partition(":")
    return sing, plur or third_person(sing)


def third_person(word: str) -> str:
    """The -s form: "boxes", "berries", "dogs"; also the third person singular of a verb."""
    if word.endswith(("s", "sh", "ch", "x", "z")):
        return word + "es"
    if word.endswith("y") and word[-2] not in VOWELS:
        return word[:-1] + "ies"
    return word + "s"


def verb(spec: str) -> tuple[str, str, str]:
    """(base, third person singular, past) of a verb spec."""
    base, _, past = spec.partition(":")
    third = third_person(base)
    if not past:
        if base.endswith("e"):
            past = base + "d"
        elif base.endswith("y") and base[-2] not in VOWELS:
            past = base[:-1] + "ied"
        else:
            past = base + "ed"
    return base, third, past


def article(word: str) -> str:
    return "an" if word[0] in VOWELS else "a"


ANIMAL_NOUNS = [(plural_of(n), verb(v)) for n, v in ANIMALS]
PERSON_NOUNS = [(plural_of(n), g, w) for n, g, w in PEOPLE]
OBJECT_NOUNS = [plural_of(n) for n in OBJECTS]
FOOD_NOUNS = [plural_of(n) for n in FOODS]
PLACE_PREP = dict(PLACES)
PLACE_NAMES = [p for p, _ in PLACES]
VERBS = {name: [verb(v) for v in specs] for name, specs in
         [("intransitive", INTRANSITIVE), ("object", WITH_OBJECT), ("food", WITH_FOOD),
          ("animate", WITH_ANIMATE)]}
_CUM: dict[int, list[float]] = {}


class Passage:
    """Draws words for one line from a random stream; early list entries are common, late ones rare."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def pick(self, items: list):
        n = len(items)
        if n not in _CUM:
            total, cum = 0.0, []
            for i in range(n):
                total += 1 / (i + 1) ** 1.1
                cum.append(total)
            _CUM[n] = cum
        return self.rng.choices(items, cum_weights=_CUM[n])[0]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    # --- noun phrases -------------------------------------------------------------------------
    def adjective_for(self, kind: str) -> str:
        pool = {"animal": [SIZE_ADJ, COLORS, ANIMATE_ADJ], "person": [SIZE_ADJ, ANIMATE_ADJ],
                "object": [COLORS, OBJECT_ADJ, SIZE_ADJ], "food": [FOOD_ADJ, FOOD_COLORS, SIZE_ADJ[:3]]}[kind]
        return self.pick(self.rng.choice(pool))

    def noun_phrase(self, forms: tuple[str, str], kind: str, plural: bool, definite: bool = True,
                    adj_p: float = 0.4) -> str:
        words = [forms[1] if plural else forms[0]]
        if self.chance(adj_p):
            words.insert(0, self.adjective_for(kind))
            if self.chance(0.15):
                words.insert(0, self.rng.choice(INTENSIFIERS))
        if definite:
            det = self.pick(["the", "the", "this", "that", "my", "our"]) if not plural else \
                self.pick(["the", "the", "these", "those", "my", "our"])
        elif plural:
            det = self.pick(["some", "two", "three", "many", "four", "five", "a few", "several"])
        else:
            det = article(words[0])
        return f"{det} {' '.join(words)}"

    def any_noun(self, kinds=("animal", "person", "object", "food")) -> tuple[tuple[str, str], str]:
        kind = self.rng.choice(kinds)
        if kind == "animal":
            return self.pick(ANIMAL_NOUNS)[0], kind
        if kind == "person":
            return self.pick(PERSON_NOUNS)[0], kind
        return self.pick(OBJECT_NOUNS if kind == "object" else FOOD_NOUNS), kind

    def place(self, definite: bool = True) -> str:
        place = self.pick(PLACE_NAMES)
        return f"{PLACE_PREP[place]} the {place}" if definite else f"{PLACE_PREP[place]} {article(place)} {place}"

    # --- present-tense sentences with agreement ---------------------------------------------------
    def verb_phrase(self, subject_kind: str, plural: bool, sound: tuple[str, str, str] | None = None) -> str:
        """A present-tense predicate for an animate subject, agreeing in number; ``sound`` is the
        subject's own sound when it is one animal kind."""
        roll = self.rng.random()
        if sound and roll < 0.3:
            base, third, _ = sound
            return (base if plural else third) + (" " + self.place() if self.chance(0.3) else "")
        if roll < 0.55:
            target = self.rng.choice(["object", "food", "animate"])
            base, third, _ = self.pick(VERBS[target])
            if target == "animate":
                obj_forms, obj_kind = self.any_noun(("animal", "person"))
            else:
                obj_forms, obj_kind = self.pick(OBJECT_NOUNS if target == "object" else FOOD_NOUNS), target
            obj = self.noun_phrase(obj_forms, obj_kind, self.chance(0.4), definite=self.chance(0.6))
            tail = " " + self.place() if self.chance(0.25) else ""
            return f"{base if plural else third} {obj}{tail}"
        if roll < 0.75:
            base, third, _ = self.pick(VERBS["intransitive"])
            tail = self.place() if self.chance(0.5) else self.pick(TIMES)
            return f"{base if plural else third} {tail}"
        be = "are" if plural else "is"
        if self.chance(0.5):
            adj = self.pick(ANIMATE_ADJ)
            return f"{be} {self.rng.choice(INTENSIFIERS)} {adj}" if self.chance(0.3) else f"{be} {adj}"
        return f"{be} {self.place()}"

    def subject(self) -> tuple[str, str, bool, tuple[str, str, str] | None]:
        """(noun phrase, kind, plural, the animal's sound or None)."""
        if self.chance(0.65):
            forms, sound = self.pick(ANIMAL_NOUNS)
            kind = "animal"
        else:
            forms, sound, kind = self.pick(PERSON_NOUNS)[0], None, "person"
        plural = self.chance(0.45)
        np = self.noun_phrase(forms, kind, plural)
        if self.chance(0.2):
            np = f"{np} {self.place()}"  # an attractor: "the dogs near the barn ..."
        return np, kind, plural, sound

    def relative_clause(self, head_kind: str, head_plural: bool) -> str:
        rel = "who" if head_kind == "person" else "that"
        if self.chance(0.5):  # subject relative: agrees with the head
            return f"{rel} {self.verb_phrase(head_kind, head_plural)}"
        forms, kind = self.any_noun(("person", "animal"))
        plural = self.chance(0.5)
        base, third, _ = self.pick(VERBS["animate"])
        # object relative: the inner verb agrees with the inner subject, not with the head
        return f"that {self.noun_phrase(forms, kind, plural, adj_p=0.2)} {base if plural else third}"

    def fact(self) -> str:
        roll = self.rng.random()
        if roll < 0.12:
            forms, kind = self.any_noun()
            count = self.rng.randint(1, 12)
            noun = forms[0] if count == 1 else forms[1]
            be = "is" if count == 1 else "are"
            return f"there {be} {NUMBERS[count]} {noun} {self.place()} ."
        if roll < 0.22:  # two singular nouns make a plural subject
            (forms_a, _), (forms_b, _) = self.pick(ANIMAL_NOUNS), self.pick(ANIMAL_NOUNS)
            return f"the {forms_a[0]} and the {forms_b[0]} {self.verb_phrase('animal', True)} ."
        if roll < 0.32:
            (forms, sound), (other, other_sound) = self.pick(ANIMAL_NOUNS), self.pick(ANIMAL_NOUNS)
            plural = self.chance(0.5)
            if other == forms:
                return f"when one {forms[0]} {sound[1]} , the other {forms[1]} {sound[0]} too ."
            return f"when the {forms[1] if plural else forms[0]} {sound[0] if plural else sound[1]} , " \
                   f"the {other[1]} {other_sound[0]} back ."
        subject, kind, plural, sound = self.subject()
        if roll < 0.6:
            subject = f"{subject} {self.relative_clause(kind, plural)}"
        return f"{subject} {self.verb_phrase(kind, plural, sound)} ."

    # --- passages ----------------------------------------------------------------------------------
    def hero(self) -> tuple[str, str, str, str]:
        """(name, pronoun, possessive, noun) of a story's main character."""
        if self.chance(0.5):
            (forms, _), gender = self.pick(ANIMAL_NOUNS), self.rng.choice("mf")
            noun = forms[0]
        else:
            (forms, gender, _) = self.pick(PERSON_NOUNS)
            gender = gender or self.rng.choice("mf")
            noun = forms[0]
        name = self.pick(MALE if gender == "m" else FEMALE)
        return name, ("he" if gender == "m" else "she"), ("his" if gender == "m" else "her"), noun

    def story(self) -> str:
        name, pron, poss, noun = self.hero()
        adj = self.pick(SIZE_ADJ + ANIMATE_ADJ)
        refs = [name, name, name, pron, pron, f"the {noun}"]

        def ref() -> str:
            return self.rng.choice(refs)

        out = [self.rng.choice([f"once upon a time there was {article(adj)} {adj} {noun} named {name} .",
                                f"there was once {article(adj)} {adj} {noun} called {name} .",
                                f"long ago , {article(adj)} {adj} {noun} named {name} lived {self.place()} ."])]
        if self.chance(0.6):
            home = self.pick(PLACE_NAMES)
            out.append(f"{ref()} lived {PLACE_PREP[home]} a {self.pick(SIZE_ADJ)} {home} near the "
                       f"{self.pick(PLACE_NAMES)} .")
        if self.chance(0.6):
            animal = [a for a in ANIMAL_NOUNS if a[0][0] == noun]
            if animal:
                habit = f"{animal[0][1][2]} {self.place()}"
            else:
                workplace = next(w for f, _, w in PERSON_NOUNS if f[0] == noun)
                habit = f"worked {PLACE_PREP[workplace]} the {workplace}"
            out.append(f"{self.pick(TIMES)} , {ref()} {habit} .")
        found_kind = self.rng.choice(["object", "object", "food"])
        thing = self.pick(OBJECT_NOUNS if found_kind == "object" else FOOD_NOUNS)[0]
        thing_adj = self.adjective_for(found_kind)
        out.append(f"one day , {ref()} found {article(thing_adj)} {thing_adj} {thing} {self.place()} .")
        feeling = self.pick(EMOTIONS)
        out.append(f"{ref()} was {self.rng.choice(INTENSIFIERS)} {feeling} .")
        if self.chance(0.7):
            if found_kind == "food":
                meal = self.rng.choice(["lunch", "dinner", "breakfast"])
                out.append(f"{pron} ate the {thing_adj} {thing} for {meal} .")
            else:
                out.append(f"{pron} picked up the {thing} and took it home .")
        if self.chance(0.5):
            friend_gender = self.rng.choice("mf")
            friend = self.pick(MALE if friend_gender == "m" else FEMALE)
            if friend != name:
                out.append(f"{name} showed the {thing} to {poss} friend {friend} , and {friend} was "
                           f"{self.pick(EMOTIONS)} too .")
        out.append(self.rng.choice([f"{name} kept the {thing_adj} {thing} forever .", "the end .",
                                    f"and {pron} lived happily ever after .",
                                    f"that night , {name} dreamed of the {thing} ."]))
        return " ".join(out)

    def describe(self) -> str:
        """Two to four sentences about one entity: agreement of pronouns and verbs with it."""
        if self.chance(0.65):
            (forms, sound), kind = self.pick(ANIMAL_NOUNS), "animal"
        else:
            forms, sound, kind = self.pick(PERSON_NOUNS)[0], None, "person"
        plural = self.chance(0.5)
        word = forms[1] if plural else forms[0]
        adj = self.adjective_for(kind)
        if plural:
            count = self.rng.randint(2, 9)
            out = [f"there are {NUMBERS[count]} {adj} {word} {self.place()} ."]
            pron = "they"
        else:
            out = [f"there is {article(adj)} {adj} {word} {self.place()} ."]
            pron = "it" if kind == "animal" else self.rng.choice(["he", "she"])
        for _ in range(self.rng.randint(1, 3)):
            subject = self.rng.choice([pron, f"the {word}", f"the {adj} {word}"])
            if sound and self.chance(0.3):
                out.append(f"{subject} {sound[0] if plural else sound[1]} {self.pick(TIMES)} .")
            else:
                out.append(f"{subject} {self.verb_phrase(kind, plural, sound)} .")
        if plural and self.chance(0.4):
            out.append(f"there were {NUMBERS[count]} of them .")
        return " ".join(out)

    def facts(self) -> str:
        return " ".join(self.fact() for _ in range(self.rng.randint(2, 3)))

    def recall(self) -> str:
        gender = self.rng.choice("mf")
        name = self.pick(MALE if gender == "m" else FEMALE)
        pron = "he" if gender == "m" else "she"
        thing = self.pick(OBJECT_NOUNS)[0]
        color = self.pick(COLORS)
        spot = self.rng.choice(SPOTS)
        did = self.pick(VERBS["intransitive"])[2]
        out = [f"{name} put the {color} {thing} {spot} .",
               f"then {pron} went to the {self.pick(PLACE_NAMES)} and {did} {self.pick(TIMES)} ."]
        question = self.rng.random()
        if question < 0.4:
            out.append(f"where is the {thing} ? the {thing} is {spot} .")
        elif question < 0.7:
            out.append(f"who put the {thing} {spot} ? {name} did .")
        else:
            out.append(f"what color is the {thing} ? it is {color} .")
        return " ".join(out)

    def exchange(self) -> str:
        (a, b) = self.rng.sample(MALE + FEMALE, 2)
        (t1, _), (t2, _) = self.pick(OBJECT_NOUNS), self.pick(OBJECT_NOUNS)
        c1, c2 = self.pick(COLORS), self.pick(COLORS)
        poss = "his" if a in MALE else "her"
        out = [f"{a} has {article(c1)} {c1} {t1} , and {b} has {article(c2)} {c2} {t2} ."]
        if self.chance(0.5):
            out.append(f"{a} gave {poss} {t1} to {b} . now {b} has {article(c1)} {c1} {t1} and "
                       f"{article(c2)} {c2} {t2} .")
        else:
            out.append(f"the {c2} {t2} belongs to {b} , and the {c1} {t1} belongs to {a} .")
        return " ".join(out)

    def counting(self) -> str:
        roll = self.rng.random()
        if roll < 0.4:
            start = self.rng.randint(1, 8)
            end = start + self.rng.randint(3, 9)
            seq = " , ".join(NUMBERS[start:end + 1]) if self.chance(0.5) else " ".join(NUMBERS[start:end + 1])
            return f"let us count from {NUMBERS[start]} to {NUMBERS[end]} : {seq} ."
        if roll < 0.75:
            forms = self.pick(OBJECT_NOUNS + FOOD_NOUNS)
            count = self.rng.randint(2, 10)
            name = self.pick(MALE + FEMALE)
            return f"{name} counted the {forms[1]} : {' , '.join(NUMBERS[1:count + 1])} . " \
                   f"there were {NUMBERS[count]} {forms[1]} ."
        start = self.rng.randint(3, 10)
        return f"{' , '.join(reversed(NUMBERS[1:start + 1]))} , go !"

    def calendar(self) -> str:
        if self.chance(0.5):
            i = self.rng.randrange(7)
            return f"today is {DAYS[i]} , so tomorrow is {DAYS[(i + 1) % 7]} and yesterday was {DAYS[i - 1]} ."
        i = self.rng.randrange(12)
        if self.chance(0.5):
            return f"after {MONTHS[i]} comes {MONTHS[(i + 1) % 12]} , and after {MONTHS[(i + 1) % 12]} " \
                   f"comes {MONTHS[(i + 2) % 12]} ."
        n = self.rng.randint(3, 6)
        return f"the months in order : {' , '.join(MONTHS[(i + k) % 12] for k in range(n))} ."

    def sums(self) -> str:
        name = self.pick(MALE + FEMALE)
        pron = "he" if name in MALE else "she"
        forms = self.pick(FOOD_NOUNS + OBJECT_NOUNS)
        a, b = self.rng.randint(1, 6), self.rng.randint(1, 4)
        had = forms[0] if a == 1 else forms[1]
        more = f"{NUMBERS[b]} more" if b > 1 else "one more"
        return f"{name} had {NUMBERS[a]} {had} and found {more} . now {pron} has {NUMBERS[a + b]} {forms[1]} ."

    def line(self) -> str:
        kinds = [self.story, self.describe, self.facts, self.recall, self.exchange, self.counting,
                 self.calendar, self.sums]
        make = self.rng.choices(kinds, weights=[30, 20, 20, 10, 6, 7, 3, 4])[0]
        text = make()
        # Short passages are joined with a second one, so lines are a few sentences long.
        while len(text.split()) < 25:
            text = f"{text} {self.rng.choices(kinds, weights=[0, 20, 20, 10, 6, 7, 3, 4])[0]()}"
        return text


def generate(seed: int = SEED) -> dict[str, list[str]]:
    """Lines per split, each split from its own random stream (seeded by seed and split name)."""
    out = {}
    for split, n in SPLITS.items():
        passage = Passage(random.Random(f"{seed}:{split}"))
        out[split] = [passage.line() for _ in range(n)]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    vocab: Counter[str] = Counter()
    for split, lines in generate(args.seed).items():
        path = args.out / f"corpus_{split}.txt"
        with path.open("w", newline="\n", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
        tokens = sum(len(line.split()) for line in lines)
        for line in lines:
            vocab.update(line.split())
        print(f"{path}: {len(lines)} lines, {tokens} tokens ({tokens / len(lines):.1f} a line), "
              f"{path.stat().st_size} bytes")
    print(f"vocabulary: {len(vocab)} distinct tokens over all splits")


if __name__ == "__main__":
    main()
