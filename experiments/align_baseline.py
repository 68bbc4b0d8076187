"""The statistical aligner's score on hand-aligned pairs: the baseline beside every attention AER.

    python -m experiments.align_baseline --corpus ../shared/data/spa-eng/spa.txt --tokenize \\
        --source ../shared/data/gold/en-es/en.txt --target ../shared/data/gold/en-es/es.txt \\
        --gold ../shared/data/gold/en-es/gold.txt --json docs/alignment_baseline_en_es.json

eflomal (``data.word_aligner``: both directions, grow-diag-final-and) aligns the pairs of the
training corpus (``--corpus``, "source<TAB>target" lines as spa-eng's "English<TAB>Spanish
<TAB>attribution") together with the gold pairs (``--source`` / ``--target``, one sentence a
line, whitespace-tokenized), as an aligner is normally run: unsupervised, on all the text there
is, the test pairs included. With ``--heldout`` it never sees the gold text with the corpus, as
a translator trained on the corpus never does: it aligns the corpus alone, its links become
priors (``word_aligner.make_priors``, eflomal's ``eflomal-makepriors``), and the gold pairs are
aligned alone, starting from them. Its links on the gold pairs are scored against the gold Sure
and Possible links (``--gold``, Pharaoh ``i-j``, i the source word; ``i-jp`` or ``i?j`` Possible):

    AER = 1 - (|A ∩ S| + |A ∩ P|) / (|A| + |S|),  precision = |A ∩ P| / |A|,
    recall = |A ∩ S| / |S|   (Och & Ney 2003; P includes S).

``--tokenize`` splits the corpus's words as the gold is tokenized (``word_aligner.tokenize``:
punctuation and clitics apart, lowercased), so that "dog." in the corpus and "dog" "." in the
gold are the same tokens; the gold text is taken as it is. eflomal lowercases every token
itself, so no separate lowercasing is needed. The corpus's links are not kept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from attn_research.data import translation, word_aligner
from attn_research.evaluation import alignment, gold_alignments


def _tokens(path: str) -> list[list[str]]:
    """The whitespace tokens of each line of `path`; ValueError naming an empty line."""
    with open(path, encoding="utf-8") as f:
        lines = [line.split() for line in f.read().splitlines()]
    for number, tokens in enumerate(lines, 1):
        if not tokens:
            raise ValueError(f"{path}:{number}: empty sentence")
    return lines


def score(
    corpus: tuple[list[str], list[str]],
    gold_sources: list[list[str]],
    gold_targets: list[list[str]],
    gold: gold_alignments.Gold,
    tokenize: bool,
    heldout: bool = False,
    length_edges: tuple[int, ...] | None = None,
) -> dict:
    """eflomal on the corpus plus the gold pairs, or (`heldout`) on the gold pairs after the
    corpus (see the module doc), scored on the gold pairs, and by source length from
    `length_edges` (``alignment.score_by_length``)."""
    split = (lambda text: word_aligner.tokenize(text)[0]) if tokenize else str.split
    sources, targets = [split(s) for s in corpus[0]], [split(t) for t in corpus[1]]
    if heldout:
        priors = word_aligner.make_priors(sources, targets)
        predicted = word_aligner.align_tokens(gold_sources, gold_targets, priors)
    else:
        aligned = word_aligner.align_tokens(sources + gold_sources, targets + gold_targets)
        predicted = aligned[-len(gold_sources) :]
    return {
        **alignment.score(predicted, gold.sure, gold.possible).as_dict(),
        "gold_pairs": len(gold_sources),
        "corpus_pairs": len(corpus[0]),
        "sure_links": sum(map(len, gold.sure)),
        "possible_links": sum(map(len, gold.possible)),
        "predicted_links": sum(map(len, predicted)),
        "aligner": list(word_aligner.SETTINGS),
        "tokenize": tokenize,
        "heldout": heldout,
        "by_length": None
        if length_edges is None
        else alignment.score_by_length(
            predicted, gold.sure, gold.possible, [len(s) for s in gold_sources], length_edges
        ),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, help="source<TAB>target training pairs")
    parser.add_argument("--source", required=True, help="gold source sentences, tokenized")
    parser.add_argument("--target", required=True, help="gold target sentences, tokenized")
    parser.add_argument("--gold", required=True, help="gold links, Pharaoh (i-jp: Possible)")
    parser.add_argument("--json", help="write the scores here")
    parser.add_argument(
        "--tokenize", action="store_true", help="split the corpus's punctuation and clitics"
    )
    parser.add_argument(
        "--heldout",
        action="store_true",
        help="align the gold pairs alone, with priors from the corpus's links",
    )
    parser.add_argument(
        "--length_buckets",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        help="also score by source length, buckets from these word counts (e.g. 0,8,12)",
    )
    args = parser.parse_args(argv)
    if args.length_buckets is not None:
        alignment.length_buckets(args.length_buckets)
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        raise ValueError(f"--json {args.json}: its directory does not exist")
    corpus = translation.read_tsv(args.corpus)
    gold_sources, gold_targets = _tokens(args.source), _tokens(args.target)
    if len(gold_sources) != len(gold_targets):
        raise ValueError(
            f"{args.source} has {len(gold_sources)} lines but {args.target} {len(gold_targets)}"
        )
    lengths = [(len(s), len(t)) for s, t in zip(gold_sources, gold_targets)]
    gold = gold_alignments.read(args.gold, "pharaoh", lengths)
    result = score(
        corpus, gold_sources, gold_targets, gold, args.tokenize, args.heldout, args.length_buckets
    )
    result["command"] = "python -m experiments.align_baseline " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    together = "then" if args.heldout else "+"
    print(
        f"eflomal on {result['corpus_pairs']} corpus {together} {result['gold_pairs']} gold pairs: "
        f"AER {result['aer']:.3f}  precision {result['precision']:.3f}  "
        f"recall {result['recall']:.3f}"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    return result


if __name__ == "__main__":
    main()
