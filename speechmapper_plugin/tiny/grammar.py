"""The mini-corpus grammar: a small English phrase-structure grammar over a fixed vocabulary that
generates the synthetic sentences (``generate_sentences``, ``grammar_words``).

Authors
-------
speechmapper developers, 2026
"""

import random

# People and animals, (singular, plural).
_ANIMATE = (
    ("dog", "dogs"),
    ("cat", "cats"),
    ("bird", "birds"),
    ("horse", "horses"),
    ("cow", "cows"),
    ("duck", "ducks"),
    ("mouse", "mice"),
    ("rabbit", "rabbits"),
    ("fox", "foxes"),
    ("bear", "bears"),
    ("sheep", "sheep"),
    ("man", "men"),
    ("woman", "women"),
    ("boy", "boys"),
    ("girl", "girls"),
    ("child", "children"),
    ("baby", "babies"),
    ("teacher", "teachers"),
    ("doctor", "doctors"),
    ("farmer", "farmers"),
    ("king", "kings"),
    ("queen", "queens"),
    ("friend", "friends"),
    ("mother", "mothers"),
    ("father", "fathers"),
    ("sister", "sisters"),
    ("brother", "brothers"),
    ("student", "students"),
)


# Countable objects (singular only).
_THINGS = (
    "ball",
    "book",
    "cup",
    "box",
    "key",
    "hat",
    "coat",
    "shoe",
    "bag",
    "bottle",
    "letter",
    "map",
    "pen",
    "chair",
    "lamp",
    "clock",
    "picture",
    "toy",
    "basket",
    "bell",
    "rope",
    "stone",
    "flower",
    "candle",
    "ring",
    "coin",
    "kite",
    "umbrella",
    "newspaper",
    "bicycle",
)


# Things that can be read.
_READABLE = ("book", "letter", "map", "newspaper")


# Countable food (singular only), mass food and drinks.
_FOOD_COUNT = ("apple", "cake", "egg", "orange", "banana", "sandwich", "cookie", "pie")


_FOOD_MASS = ("bread", "cheese", "soup", "rice")


_DRINKS = ("milk", "tea", "coffee", "water", "juice")


# Places and large objects used after prepositions (singular only).
_PLACES = (
    "house",
    "garden",
    "river",
    "park",
    "school",
    "forest",
    "road",
    "bridge",
    "hill",
    "lake",
    "village",
    "farm",
    "kitchen",
    "shop",
    "market",
    "beach",
    "field",
    "church",
    "library",
    "castle",
    "tree",
    "table",
    "door",
    "window",
    "wall",
    "gate",
    "car",
    "boat",
    "bus",
    "train",
    "mountain",
    "street",
)


# Adjectives that fit any noun, and adjectives that fit people and animals.
_ADJ_ANY = (
    "small",
    "big",
    "old",
    "new",
    "red",
    "blue",
    "green",
    "yellow",
    "white",
    "black",
    "brown",
    "little",
    "large",
    "warm",
    "cold",
    "dark",
    "bright",
    "quiet",
    "clean",
    "dirty",
    "heavy",
    "long",
    "wet",
    "dry",
)


_ADJ_ANIMATE = (
    "happy",
    "sad",
    "tall",
    "young",
    "tired",
    "hungry",
    "angry",
    "kind",
    "brave",
    "busy",
    "funny",
)


_INTENSIFIERS = ("very", "really", "quite", "so")


_MANNER = (
    "quickly",
    "slowly",
    "quietly",
    "loudly",
    "happily",
    "sadly",
    "carefully",
    "softly",
    "suddenly",
    "again",
)


_TIMES = (
    ("yesterday",),
    ("today",),
    ("tonight",),
    ("last", "night"),
    ("last", "week"),
    ("this", "morning"),
    ("this", "evening"),
    ("in", "the", "morning"),
    ("at", "night"),
    ("every", "day"),
    ("after", "lunch"),
    ("before", "dinner"),
    ("later",),
)


_PREPOSITIONS = (
    ("in",),
    ("near",),
    ("behind",),
    ("beside",),
    ("under",),
    ("outside",),
    ("inside",),
    ("at",),
    ("by",),
    ("on",),
    ("next", "to"),
    ("in", "front", "of"),
)


# Transitive verbs: (base, past, object classes). Object classes: A animate, T thing,
# R readable, F food, D drink, P place.
_TRANSITIVE = (
    ("see", "saw", "ATFP"),
    ("find", "found", "ATF"),
    ("like", "liked", "ATFDP"),
    ("want", "wanted", "TFD"),
    ("take", "took", "TF"),
    ("bring", "brought", "TFD"),
    ("carry", "carried", "AT"),
    ("hold", "held", "AT"),
    ("open", "opened", "T"),
    ("watch", "watched", "A"),
    ("follow", "followed", "A"),
    ("help", "helped", "A"),
    ("call", "called", "A"),
    ("pull", "pulled", "T"),
    ("push", "pushed", "T"),
    ("wash", "washed", "AT"),
    ("paint", "painted", "TP"),
    ("drop", "dropped", "TF"),
    ("catch", "caught", "AT"),
    ("buy", "bought", "TFD"),
    ("make", "made", "FD"),
    ("build", "built", "P"),
    ("clean", "cleaned", "TP"),
    ("visit", "visited", "AP"),
    ("love", "loved", "AFD"),
    ("need", "needed", "TFD"),
    ("keep", "kept", "T"),
    ("leave", "left", "TP"),
    ("meet", "met", "A"),
    ("hear", "heard", "A"),
    ("draw", "drew", "ATP"),
    ("throw", "threw", "T"),
    ("cook", "cooked", "F"),
    ("read", "read", "R"),
    ("eat", "ate", "F"),
    ("drink", "drank", "D"),
    ("feed", "fed", "A"),
)


# Intransitive verbs: (base, past).
_INTRANSITIVE = (
    ("sleep", "slept"),
    ("run", "ran"),
    ("walk", "walked"),
    ("sing", "sang"),
    ("sit", "sat"),
    ("wait", "waited"),
    ("play", "played"),
    ("laugh", "laughed"),
    ("jump", "jumped"),
    ("dance", "danced"),
    ("swim", "swam"),
    ("stand", "stood"),
    ("work", "worked"),
    ("smile", "smiled"),
    ("cry", "cried"),
    ("hide", "hid"),
    ("talk", "talked"),
)


# (subject, object, person-number): "s" third singular, "p" plural/you, "i" first singular.
_PRONOUNS = (
    ("i", "me", "i"),
    ("you", "you", "p"),
    ("he", "him", "s"),
    ("she", "her", "s"),
    ("we", "us", "p"),
    ("they", "them", "p"),
)


_DET_SG = ("the", "the", "the", "a", "this", "that", "every", "my", "your", "his", "her", "our")


_DET_PL = ("the", "the", "some", "many", "two", "three", "these", "those", "my", "our", "their")


_DET_MASS = ("the", "the", "some", "my", "your", "his", "her", "our", "their", "this", "that")


_DET_PLACE = ("the", "the", "the", "the", "a", "my", "our", "their", "that")


_MODALS = ("can", "will", "could", "should", "would")


_WH_DID = ("where", "when", "why", "how")


_SAY_VERBS = ("said", "thought", "knew")


_CONJUNCTIONS = ("and", "but", "because", "so", "while", "when")


# Every sentence starting with one of these words is a question.
_QUESTION_WORDS = frozenset(("did", "who", "what", "was", "were") + _WH_DID + _MODALS)


_MIN_WORDS, _MAX_WORDS = 4, 14


class _Unavailable(Exception):
    """A grammar slot has no allowed word (restricted vocabulary)."""


class _Grammar:
    """Sentence sampler; with ``allowed`` set, it only picks words from that set."""

    def __init__(self, rng, allowed=None):
        self.rng = rng
        self.allowed = allowed

    def ok(self, *words):
        return self.allowed is None or all(w in self.allowed for w in words)

    def pick(self, options):
        """Picks one option (a word or a tuple of words) whose words are all allowed."""
        if self.allowed is not None:
            options = [o for o in options if self.ok(*((o,) if isinstance(o, str) else o))]
        if not options:
            raise _Unavailable
        return self.rng.choice(options)

    def chance(self, p):
        return self.rng.random() < p

    # ---- phrases -----------------------------------------------------------------------
    def article(self, det, following):
        if det == "a" and following[0] in "aeiou":
            return "an"
        return det

    def adjectives(self, animate):
        words = []
        if self.chance(0.45):
            words.append(self.pick(_ADJ_ANY + _ADJ_ANIMATE if animate else _ADJ_ANY))
            if self.chance(0.12):
                second = self.pick(_ADJ_ANY)
                if second != words[0]:
                    words.append(second)
        return words

    def noun_phrase(self, cls, allow_pronoun=False, case="subject"):
        """Returns (words, agreement) for a noun of class ``cls`` (a letter, see verbs)."""
        if allow_pronoun and cls == "A" and self.chance(0.2):
            pron = self.pick(_PRONOUNS)
            return [pron[0] if case == "subject" else pron[1]], pron[2]
        if cls == "A":
            sg, pl = self.pick(_ANIMATE)
            plural = self.chance(0.3)
            noun, dets, agr = (pl, _DET_PL, "p") if plural else (sg, _DET_SG, "s")
        elif cls == "T":
            noun, dets, agr = self.pick(_THINGS), _DET_SG, "s"
        elif cls == "R":
            noun, dets, agr = self.pick(_READABLE), _DET_SG, "s"
        elif cls == "F":
            if self.chance(0.6):
                noun, dets, agr = self.pick(_FOOD_COUNT), _DET_SG, "s"
            else:
                noun, dets, agr = self.pick(_FOOD_MASS), _DET_MASS, "s"
        elif cls == "D":
            noun, dets, agr = self.pick(_DRINKS), _DET_MASS, "s"
        else:
            noun, dets, agr = self.pick(_PLACES), _DET_PLACE, "s"
        adjs = self.adjectives(animate=cls == "A")
        det = self.pick(dets)
        det = self.article(det, (adjs + [noun])[0])
        if not self.ok(det):
            raise _Unavailable
        return [det] + adjs + [noun], agr

    def place_phrase(self):
        return list(self.pick(_PREPOSITIONS)) + self.noun_phrase("P")[0]

    def time_phrase(self):
        return list(self.pick(_TIMES))

    def object_phrase(self, classes):
        return self.noun_phrase(self.rng.choice(classes), allow_pronoun=True, case="object")[0]

    def be(self, agr, past=True):
        if past:
            return "were" if agr == "p" else "was"
        return {"i": "am", "s": "is", "p": "are"}[agr]

    # ---- clauses -----------------------------------------------------------------------
    def clause_transitive(self):
        subj, _ = self.noun_phrase("A", allow_pronoun=True)
        base, past, classes = self.pick(_TRANSITIVE)
        words = subj + [past] + self.object_phrase(classes)
        r = self.rng.random()
        if r < 0.4:
            words += self.place_phrase()
        elif r < 0.55:
            words += self.time_phrase()
        elif r < 0.7:
            words += [self.pick(_MANNER)]
        return words

    def clause_intransitive(self):
        subj, _ = self.noun_phrase("A", allow_pronoun=True)
        words = subj + [self.pick(_INTRANSITIVE)[1]]
        if self.chance(0.5):
            words.append(self.pick(_MANNER))
        if self.chance(0.6):
            words += self.place_phrase()
        if self.chance(0.3):
            words += self.time_phrase()
        return words

    def clause_copula(self):
        cls = self.rng.choice("AATFDP")
        subj, agr = self.noun_phrase(cls, allow_pronoun=True)
        words = subj + [self.be(agr, past=self.chance(0.7))]
        if self.chance(0.35):
            words.append(self.pick(_INTENSIFIERS))
        words.append(self.pick(_ADJ_ANY + _ADJ_ANIMATE if cls == "A" else _ADJ_ANY))
        return words

    def clause_there(self):
        cls = self.rng.choice("ATTF")
        obj, agr = self.noun_phrase(cls)
        if agr == "p" or obj[-1] in _FOOD_MASS:
            det = obj[0] if obj[0] in ("some", "many", "two", "three") else "some"
        else:
            det = self.article("a", obj[1])
        if not self.ok(det):
            raise _Unavailable
        return ["there", self.be(agr, past=self.chance(0.7)), det] + obj[1:] + self.place_phrase()

    def clause_modal(self):
        subj, _ = self.noun_phrase("A", allow_pronoun=True)
        base, _, classes = self.pick(_TRANSITIVE)
        words = subj + [self.pick(_MODALS)]
        if self.chance(0.2):
            words.append("not")
        return words + [base] + self.object_phrase(classes)

    def clause_want(self):
        subj, _ = self.noun_phrase("A", allow_pronoun=True)
        words = subj + [self.pick(("wanted", "liked", "tried", "needed")), "to"]
        if self.chance(0.5):
            base, _, classes = self.pick(_TRANSITIVE)
            return words + [base] + self.object_phrase(classes)
        return words + [self.pick(_INTRANSITIVE)[0]] + self.place_phrase()

    def statement(self):
        r = self.rng.random()
        if r < 0.34:
            return self.clause_transitive()
        if r < 0.56:
            return self.clause_intransitive()
        if r < 0.7:
            return self.clause_copula()
        if r < 0.8:
            return self.clause_there()
        if r < 0.9:
            return self.clause_modal()
        return self.clause_want()

    # ---- questions and other forms -----------------------------------------------------
    def question(self):
        r = self.rng.random()
        subj, agr = self.noun_phrase("A", allow_pronoun=True)
        if r < 0.3:
            base, _, classes = self.pick(_TRANSITIVE)
            words = ["did"] + subj + [base] + self.object_phrase(classes)
            return words + (self.place_phrase() if self.chance(0.3) else [])
        if r < 0.5:
            base = self.pick(_INTRANSITIVE)[0]
            return [self.pick(_WH_DID), "did"] + subj + [base]
        if r < 0.6:
            base, _, classes = self.pick(_TRANSITIVE)
            return ["what", "did"] + subj + [base] + self.place_phrase()
        if r < 0.75:
            _, past, classes = self.pick(_TRANSITIVE)
            return ["who", past] + self.object_phrase(classes)
        if r < 0.88:
            base, _, classes = self.pick(_TRANSITIVE)
            return [self.pick(_MODALS)] + subj + [base] + self.object_phrase(classes)
        adj = self.pick(_ADJ_ANY + _ADJ_ANIMATE)
        return [self.be(agr if agr != "i" else "s")] + subj + [adj]

    def imperative(self):
        base, _, classes = self.pick(_TRANSITIVE)
        words = ["please"] if self.chance(0.6) else []
        if self.chance(0.2):
            words += ["do", "not"]
        words += [base] + self.object_phrase(classes)
        if self.chance(0.4):
            words += self.place_phrase()
        return words

    def sentence(self):
        r = self.rng.random()
        if r < 0.55:
            return self.statement()
        if r < 0.72:
            return self.question()
        if r < 0.8:
            return self.imperative()
        if r < 0.9:
            subj, _ = self.noun_phrase("A", allow_pronoun=True)
            return subj + [self.pick(_SAY_VERBS), "that"] + self.statement()
        return self.statement() + [self.pick(_CONJUNCTIONS)] + self.statement()


def _sentence_words():
    """All words the grammar can produce, in a fixed order."""
    words = []
    for sg, pl in _ANIMATE:
        words += [sg, pl]
    words += list(_THINGS + _FOOD_COUNT + _FOOD_MASS + _DRINKS + _PLACES)
    words += list(_ADJ_ANY + _ADJ_ANIMATE + _INTENSIFIERS + _MANNER)
    for phrase in _TIMES + _PREPOSITIONS:
        words += list(phrase)
    for base, past, _ in _TRANSITIVE:
        words += [base, past]
    for base, past in _INTRANSITIVE:
        words += [base, past]
    for pron in _PRONOUNS:
        words += list(pron[:2])
    words += list(_DET_SG + _DET_PL + _DET_MASS + _DET_PLACE + _MODALS + _WH_DID)
    words += list(_SAY_VERBS + _CONJUNCTIONS)
    words += ["an", "there", "was", "were", "am", "is", "are", "not", "to", "did", "do"]
    words += ["what", "who", "please", "that", "wanted", "liked", "tried", "needed"]
    return words


VOCABULARIES = ("full", "small")


def _small_vocabulary_drops():
    """Content words left out of the "small" vocabulary: every second entry of each open
    word class (nouns, adjectives, adverbs of manner, verbs)."""
    drop = set()
    for cls in (
        _THINGS,
        _PLACES,
        _ADJ_ANY,
        _ADJ_ANIMATE,
        _MANNER,
        _FOOD_COUNT,
        _FOOD_MASS,
        _DRINKS,
        _READABLE,
    ):
        drop.update(cls[1::2])
    for sg, pl in _ANIMATE[1::2]:
        drop.update((sg, pl))
    for base, past, *_ in _TRANSITIVE[1::2]:
        drop.update((base, past))
    for base, past in _INTRANSITIVE[1::2]:
        drop.update((base, past))
    return drop


def grammar_words(vocabulary="full"):
    """Returns the sorted list of the words the sentence grammar can produce.

    Arguments
    ---------
    vocabulary : str
        ``"full"`` (every word of the grammar) or ``"small"`` (half of the open-class
        content words: fewer distinct words, each heard more often, which is what a
        few-minute CPU training needs).

    Returns
    -------
    list of str
        Lowercase ASCII words.

    Example
    -------
    >>> words, small = grammar_words(), grammar_words("small")
    >>> 250 <= len(words) <= 400, "dog" in words, len(small) < 0.7 * len(words)
    (True, True, True)
    """
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"vocabulary must be one of {VOCABULARIES}, got {vocabulary!r}")
    words = set(_sentence_words())
    if vocabulary == "small":
        words -= _small_vocabulary_drops()
    return sorted(words)


def generate_sentences(n, seed=0, exclude=(), vocabulary=None):
    """Generates ``n`` distinct random English sentences from the built-in grammar.

    Sentences are lowercase, words separated by one space, 4 to 14 words long,
    without punctuation. The result depends only on the arguments.

    Arguments
    ---------
    n : int
        Number of sentences.
    seed : int
        Random seed.
    exclude : iterable of str
        Sentences that must not be produced (e.g. the training sentences).
    vocabulary : iterable of str, optional
        If given, only sentences made entirely of these words are produced (used for
        held-out sentences covered by the training vocabulary).

    Returns
    -------
    list of str
        ``n`` distinct sentences, none of them in ``exclude``.

    Raises
    ------
    ValueError
        If ``n`` distinct sentences cannot be found (e.g. the vocabulary is too small).

    Example
    -------
    >>> train = generate_sentences(50, seed=1)
    >>> words = {w for s in train for w in s.split()}
    >>> held_out = generate_sentences(5, seed=2, exclude=train, vocabulary=words)
    >>> len(held_out), set(held_out) & set(train)
    (5, set())
    >>> all(set(s.split()) <= words for s in held_out)
    True
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"generate_sentences: n must be a non-negative int, got {n!r}")
    allowed = None if vocabulary is None else frozenset(vocabulary)
    excluded = frozenset(exclude)
    grammar = _Grammar(random.Random(seed), allowed)
    seen, sentences = set(), []
    max_attempts = 2000 + 300 * n
    attempts = 0
    while len(sentences) < n:
        attempts += 1
        if attempts > max_attempts:
            raise ValueError(
                f"generate_sentences: found only {len(sentences)} of the {n} distinct "
                f"sentences requested in {max_attempts} attempts (vocabulary of "
                f"{'all' if allowed is None else len(allowed)} words, {len(excluded)} "
                "excluded sentences). Ask for fewer sentences or allow more words "
                "(e.g. a larger num_train)."
            )
        try:
            words = grammar.sentence()
        except _Unavailable:
            continue
        if not _MIN_WORDS <= len(words) <= _MAX_WORDS or not grammar.ok(*words):
            continue
        text = " ".join(words)
        if text in seen or text in excluded:
            continue
        seen.add(text)
        sentences.append(text)
    return sentences


def _spoken_form(text):
    """Adds the final punctuation that gives espeak the right intonation."""
    return text + ("?" if text.split(" ", 1)[0] in _QUESTION_WORDS else ".")
