"""An embedded English -> Spanish-like parallel corpus with gold word alignments, a pure function
of its seed, from a small lexicon and grammar ("the red cat" -> "el gato rojo"). It has
adjective-noun reordering, articles that are not one to one ("to the" -> "al"), one word
becoming two ("sat" -> "se sentó"), agreement in number and gender, and 1 to `max_clauses`
joined clauses. Each pair's gold alignment is a set of (source word, target word) links, every
target word linked.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# (English singular, English plural, Spanish singular, Spanish plural, gender 'm' | 'f').
NOUNS = (
    ("cat", "cats", "gato", "gatos", "m"),
    ("dog", "dogs", "perro", "perros", "m"),
    ("mat", "mats", "alfombra", "alfombras", "f"),
    ("house", "houses", "casa", "casas", "f"),
    ("table", "tables", "mesa", "mesas", "f"),
    ("tree", "trees", "árbol", "árboles", "m"),
    ("bird", "birds", "pájaro", "pájaros", "m"),
    ("girl", "girls", "niña", "niñas", "f"),
    ("boy", "boys", "niño", "niños", "m"),
    ("woman", "women", "mujer", "mujeres", "f"),
    ("man", "men", "hombre", "hombres", "m"),
    ("book", "books", "libro", "libros", "m"),
    ("car", "cars", "coche", "coches", "m"),
    ("garden", "gardens", "jardín", "jardines", "m"),
    ("window", "windows", "ventana", "ventanas", "f"),
    ("chair", "chairs", "silla", "sillas", "f"),
    ("apple", "apples", "manzana", "manzanas", "f"),
    ("horse", "horses", "caballo", "caballos", "m"),
    ("river", "rivers", "río", "ríos", "m"),
    ("door", "doors", "puerta", "puertas", "f"),
    ("city", "cities", "ciudad", "ciudades", "f"),
    ("teacher", "teachers", "maestro", "maestros", "m"),
    ("letter", "letters", "carta", "cartas", "f"),
    ("park", "parks", "parque", "parques", "m"),
)
# (English, Spanish m. sg., f. sg., m. pl., f. pl.).
ADJECTIVES = (
    ("big", "grande", "grande", "grandes", "grandes"),
    ("red", "rojo", "roja", "rojos", "rojas"),
    ("small", "pequeño", "pequeña", "pequeños", "pequeñas"),
    ("black", "negro", "negra", "negros", "negras"),
    ("white", "blanco", "blanca", "blancos", "blancas"),
    ("old", "viejo", "vieja", "viejos", "viejas"),
    ("new", "nuevo", "nueva", "nuevos", "nuevas"),
    ("happy", "feliz", "feliz", "felices", "felices"),
    ("tall", "alto", "alta", "altos", "altas"),
    ("green", "verde", "verde", "verdes", "verdes"),
    ("beautiful", "hermoso", "hermosa", "hermosos", "hermosas"),
    ("quiet", "tranquilo", "tranquila", "tranquilos", "tranquilas"),
)
# Determiners: English singular, English plural -> Spanish (m sg, f sg, m pl, f pl).
DETERMINERS = (
    ("the", "the", "el", "la", "los", "las"),
    ("a", "some", "un", "una", "unos", "unas"),
    ("my", "my", "mi", "mi", "mis", "mis"),
    ("this", "these", "este", "esta", "estos", "estas"),
)
# (English, Spanish 3rd person singular, plural); Spanish forms may be several words.
INTRANSITIVE = (
    ("sat", "se sentó", "se sentaron"),
    ("slept", "durmió", "durmieron"),
    ("ran", "corrió", "corrieron"),
    ("waited", "esperó", "esperaron"),
    ("walked", "caminó", "caminaron"),
    ("jumped", "saltó", "saltaron"),
    ("played", "jugó", "jugaron"),
    ("lived", "vivió", "vivieron"),
)
TRANSITIVE = (
    ("saw", "vio", "vieron"),
    ("ate", "comió", "comieron"),
    ("found", "encontró", "encontraron"),
    ("bought", "compró", "compraron"),
    ("painted", "pintó", "pintaron"),
    ("carried", "llevó", "llevaron"),
    ("wanted", "quiso", "quisieron"),
)
# (English, Spanish); "a" and "de" contract with "el" to "al" and "del".
PREPOSITIONS = (
    ("on", "en"),
    ("in", "en"),
    ("under", "debajo de"),
    ("near", "cerca de"),
    ("with", "con"),
    ("behind", "detrás de"),
    ("to", "a"),
    ("from", "de"),
)
CONJUNCTIONS = (("and", "y"), ("but", "pero"), ("while", "mientras"), ("because", "porque"))
ADVERBS = (("yesterday", "ayer"), ("today", "hoy"), ("again", "otra vez"))
_CONTRACTIONS = {("a", "el"): "al", ("de", "el"): "del"}


@dataclasses.dataclass(frozen=True)
class Pair:
    """One sentence pair: space-separated words and gold links (source word, target word)."""

    source: str
    target: str
    alignment: tuple[tuple[int, int], ...]


class _Builder:
    """Accumulates both sides word by word, with the links of each target word."""

    def __init__(self) -> None:
        self.source: list[str] = []
        self.target: list[tuple[str, set[int]]] = []

    def add_source(self, word: str) -> int:
        self.source.append(word)
        return len(self.source) - 1

    def add_target(self, words: str, *links: int) -> None:
        """Adds each word of `words`, all linked to the source words `links`."""
        for word in words.split():
            self.target.append((word, set(links)))

    def contract(self, at: int) -> None:
        """Merges target words `at`, `at + 1` ("a el" -> "al", "de el" -> "del"), keeping links."""
        (first, first_links), (second, second_links) = self.target[at], self.target[at + 1]
        merged = _CONTRACTIONS.get((first, second))
        if merged is not None:
            self.target[at : at + 2] = [(merged, first_links | second_links)]

    def pair(self) -> Pair:
        links = tuple(sorted((s, t) for t, (_, srcs) in enumerate(self.target) for s in srcs))
        return Pair(" ".join(self.source), " ".join(w for w, _ in self.target), links)


def _noun_phrase(b: _Builder, rng: np.random.Generator, plural: bool | None = None) -> bool:
    """Adds "det (adj) noun" -> "det noun (adj)"; returns whether the phrase is plural."""
    plural = bool(rng.random() < 0.3) if plural is None else plural
    det = DETERMINERS[rng.integers(len(DETERMINERS))]
    noun = NOUNS[rng.integers(len(NOUNS))]
    adj = ADJECTIVES[rng.integers(len(ADJECTIVES))] if rng.random() < 0.4 else None
    form = (2 if plural else 0) + (noun[4] == "f")
    d = b.add_source(det[1] if plural else det[0])
    a = b.add_source(adj[0]) if adj else None
    n = b.add_source(noun[1] if plural else noun[0])
    b.add_target(det[2 + form], d)
    b.add_target(noun[3] if plural else noun[2], n)
    if adj:
        b.add_target(adj[1 + form], a)
    return plural


def _prepositional_phrase(b: _Builder, rng: np.random.Generator) -> None:
    """Adds "prep NP"; "a" / "de" contract with a following "el"."""
    en, es = PREPOSITIONS[rng.integers(len(PREPOSITIONS))]
    b.add_target(es, b.add_source(en))
    at = len(b.target) - 1
    _noun_phrase(b, rng)
    b.contract(at)


def _clause(b: _Builder, rng: np.random.Generator) -> None:
    """Subject, verb, then an object and/or a prepositional phrase and an adverb."""
    plural = _noun_phrase(b, rng)
    transitive = rng.random() < 0.5
    verbs = TRANSITIVE if transitive else INTRANSITIVE
    verb = verbs[rng.integers(len(verbs))]
    b.add_target(verb[2] if plural else verb[1], b.add_source(verb[0]))
    if transitive:
        _noun_phrase(b, rng)
    if rng.random() < (0.4 if transitive else 0.8):
        _prepositional_phrase(b, rng)
    if rng.random() < 0.15:
        en, es = ADVERBS[rng.integers(len(ADVERBS))]
        b.add_target(es, b.add_source(en))


def generate_pair(rng: np.random.Generator, max_clauses: int) -> Pair:
    """One pair of 1 to `max_clauses` clauses (shorter ones likelier)."""
    weights = 0.7 ** np.arange(max_clauses)
    clauses = 1 + int(rng.choice(max_clauses, p=weights / weights.sum()))
    b = _Builder()
    for i in range(clauses):
        if i:
            en, es = CONJUNCTIONS[rng.integers(len(CONJUNCTIONS))]
            b.add_target(es, b.add_source(en))
        _clause(b, rng)
    return b.pair()


def generate(num_pairs: int, seed: int, max_clauses: int = 6) -> list[Pair]:
    """`num_pairs` pairs, a pure function of `seed`.

    Raises:
      ValueError: if `num_pairs` or `max_clauses` is not positive.
    """
    if num_pairs < 1:
        raise ValueError(f"synthetic corpus: num_pairs must be >= 1, got {num_pairs}")
    if max_clauses < 1:
        raise ValueError(f"synthetic corpus: max_clauses must be >= 1, got {max_clauses}")
    rng = np.random.default_rng(seed)
    return [generate_pair(rng, max_clauses) for _ in range(num_pairs)]
