"""Word alignment read-outs, symmetrization, gold formats and AER, each on a hand-worked example."""

import numpy as np
import pytest

from attn_research.data import symmetrize
from attn_research.evaluation import alignment, alignment_readouts, gold_alignments
from attn_research.evaluation.alignment_readouts import PairAttention, Selection

# [target words, source words]: rows are target words 0..2, columns source words 0..2.
W = np.asarray(
    [
        [0.7, 0.2, 0.1],
        [0.6, 0.3, 0.1],
        [0.1, 0.4, 0.5],
    ]
)


def _read(method, attention, selection=Selection((0,)), tau=0.4):
    return alignment_readouts.READOUTS[method](attention, selection, tau)


def test_argmax_target_source_and_threshold_by_hand():
    pair = PairAttention({"m": {"average": W}}, {})
    # Rows: t0 -> s0, t1 -> s0, t2 -> s2.
    assert _read("argmax_target", pair) == {(0, 0), (0, 1), (2, 2)}
    # Columns: s0 -> t0 (0.7), s1 -> t2 (0.4), s2 -> t2 (0.5).
    assert _read("argmax_source", pair) == {(0, 0), (1, 2), (2, 2)}
    # >= 0.4: (t0, s0) 0.7, (t1, s0) 0.6, (t2, s1) 0.4, (t2, s2) 0.5.
    assert _read("threshold", pair) == {(0, 0), (0, 1), (1, 2), (2, 2)}
    assert _read("threshold", pair, tau=0.65) == {(0, 0)}


def test_shift_reads_the_step_after_each_words_last_piece():
    # Target pieces: word 0 (two pieces), word 1, word 2, EOS.
    target_words = np.asarray([0, 0, 1, 2, -1])
    # Word 0 is the input at step 2, word 1 at step 3, word 2 (the last) at the EOS step 4.
    np.testing.assert_array_equal(alignment_readouts.shift_rows(target_words), [-1, -1, 0, 1, 2])
    # Source pieces: word 0, word 1, EOS. Rows are decoder steps.
    pieces_TS = np.asarray(
        [
            [0.9, 0.1, 0.0],
            [0.8, 0.2, 0.0],
            [0.3, 0.7, 0.0],
            [0.6, 0.4, 0.0],
            [0.2, 0.5, 0.3],
        ]
    )
    source_words = np.asarray([0, 1, -1])
    words = lambda rows: alignment.word_attention(pieces_TS, rows, source_words, (3, 2))
    pair = PairAttention(
        {"m": {"average": words(target_words)}},
        {"m": {"average": words(alignment_readouts.shift_rows(target_words))}},
    )
    # Written: word 0 = mean of steps 0, 1 = [0.85, 0.15] -> s0; word 1 step 2 -> s1; word 2
    # step 3 -> s0.
    assert _read("argmax_target", pair) == {(0, 0), (1, 1), (0, 2)}
    # Shifted: word 0 step 2 -> s1; word 1 step 3 -> s0; word 2 step 4 -> s1.
    assert _read("shift", pair) == {(1, 0), (0, 1), (1, 2)}
    # Shifted, one link per source word: the rows [0.3, 0.7], [0.6, 0.4], [0.2, 0.5]; s0's
    # largest is word 1's 0.6, s1's word 0's 0.7.
    assert _read("shift_source", pair) == {(0, 1), (1, 0)}


def test_mean_over_chosen_layers_and_heads():
    heads = {
        "l1": [[[0.9, 0.1], [0.2, 0.8]], [[0.3, 0.7], [0.3, 0.7]]],
        "l2": [[[0.2, 0.8], [0.9, 0.1]], [[0.4, 0.6], [0.8, 0.2]]],
    }
    views = {
        name: {"average": np.mean(h, 0), "head 1": np.asarray(h[0]), "head 2": np.asarray(h[1])}
        for name, h in heads.items()
    }
    pair = PairAttention(views, {})
    # All four: row 0 [0.45, 0.55] -> s1; row 1 [0.55, 0.45] -> s0.
    assert _read("mean", pair, Selection()) == {(1, 0), (0, 1)}
    # l1 averaged: row 0 [0.6, 0.4] -> s0; row 1 [0.25, 0.75] -> s1.
    assert _read("mean", pair, Selection((0,))) == {(0, 0), (1, 1)}
    # l1 head 2: rows [0.3, 0.7] -> s1 both.
    assert _read("mean", pair, Selection((0,), (2,))) == {(1, 0), (1, 1)}
    assert _read("argmax_target", pair, Selection((-1,), (1,))) == {(1, 0), (0, 1)}
    with pytest.raises(ValueError, match="head 3"):
        Selection((0,), (3,)).check({"l1": 2, "l2": 2})
    with pytest.raises(ValueError, match="layer 2"):
        Selection((2,)).check({"l1": 2, "l2": 2})


def test_the_grid_has_every_method_map_and_head():
    grid = alignment_readouts.grid({"l1": 2, "rnn": 1})
    shifted = [s for m, s in grid if m == "shift"]
    assert shifted == [
        Selection((0,)),
        Selection((0,), (1,)),
        Selection((0,), (2,)),
        Selection((1,)),
    ]
    assert [s for m, s in grid if m == "mean"] == [Selection()]
    assert {m for m, _ in grid} == set(alignment_readouts.READOUTS)


def test_grow_diag_final_and_by_hand():
    # Koehn et al. 2005 on 6 x 6 words, links (source i, target j).
    forward = {(0, 0), (2, 2), (1, 0), (5, 5), (3, 2)}
    reverse = {(0, 0), (2, 2), (3, 3), (4, 5), (2, 4), (1, 2)}
    # Start: the intersection {(0,0), (2,2)}; sources {0, 2}, targets {0, 2} aligned.
    # GROW-DIAG, first sweep in (i, j) order:
    #   (0,0): neighbour (1,0) is in the union and source 1 is unaligned: add it.
    #   (1,0): no new neighbour in the union.
    #   (2,2): neighbour (1,2) is in the union, but source 1 and target 2 are both aligned:
    #          not added; (3,2): source 3 unaligned: add; diagonal (3,3): target 3
    #          unaligned: add.
    #   (3,2): nothing new. (3,3): diagonal (2,4): target 4 unaligned: add.
    #   Second sweep: (2,4)'s neighbours add nothing; stop.
    # FINAL-AND(forward): (5,5), both words unaligned: add. FINAL-AND(reverse): (4,5), target 5
    # is aligned now: not added; (1,2): both aligned: not added.
    expected = {(0, 0), (1, 0), (2, 2), (3, 2), (3, 3), (2, 4), (5, 5)}
    assert symmetrize.grow_diag_final_and(forward, reverse) == expected
    assert symmetrize.intersection(forward, reverse) == {(0, 0), (2, 2)}
    assert symmetrize.union(forward, reverse) == forward | reverse
    assert symmetrize.grow_diag_final_and(set(), set()) == set()


def test_scores_by_hand_with_sure_and_possible_links():
    predicted = [{(0, 0), (2, 1), (2, 2)}, {(0, 0)}]
    sure = [{(0, 0), (1, 1)}, {(0, 0), (1, 0)}]
    possible = [{(0, 0), (1, 1), (2, 1), (1, 2)}, {(0, 0), (1, 0)}]
    # |A| = 4, |S| = 4, |A & S| = 1 + 1, |A & P| = 2 + 1.
    scores = alignment.score(predicted, sure, possible)
    assert scores.precision == pytest.approx(3 / 4)
    assert scores.recall == pytest.approx(2 / 4)
    assert scores.aer == pytest.approx(1 - (2 + 3) / (4 + 4))
    with pytest.raises(ValueError, match="2 predicted alignments against 1"):
        alignment.score(predicted, sure[:1])


def test_scores_by_source_length_by_hand():
    # Pair 0 (3 source words): |A| = 3, |S| = 2, |A & S| = 1, |A & P| = 2. Pair 1 (2 words):
    # |A| = 1, |S| = 2, |A & S| = |A & P| = 1. Pair 2 (7 words) has no links at all.
    predicted = [{(0, 0), (2, 1), (2, 2)}, {(0, 0)}, set()]
    sure = [{(0, 0), (1, 1)}, {(0, 0), (1, 0)}, set()]
    possible = [{(0, 0), (1, 1), (2, 1), (1, 2)}, {(0, 0), (1, 0)}, set()]
    rows = alignment.score_by_length(predicted, sure, possible, [3, 2, 7], (0, 3, 5, 6))
    assert rows == [
        {"words": "0-2", "pairs": 1, "aer": 1 - 2 / 3, "precision": 1.0, "recall": 0.5},
        {
            "words": "3-4",
            "pairs": 1,
            "aer": pytest.approx(1 - 3 / 5),
            "precision": 2 / 3,
            "recall": 0.5,
        },
        {"words": "6+", "pairs": 1, "aer": None, "precision": None, "recall": None},
    ]
    with pytest.raises(ValueError, match=r"length buckets \[0, 5, 5\]: want increasing"):
        alignment.score_by_length(predicted, sure, possible, [3, 2, 7], (0, 5, 5))


PHARAOH = "0-0 1-1 2-1p 1?2\n0-0 1-0\n"
# The same links, 1-based, with a missing S|P column, a confidence and a NULL link (position 0).
NAACL = "1 1 1 S\n1 2 2\n1 3 2 P\n1 2 3 P 0.8\n2 1 1 S\n2 2 1 S 1\n2 3 0 S\n"


def test_both_gold_formats_give_the_same_links(tmp_path):
    (tmp_path / "gold.txt").write_text(PHARAOH)
    (tmp_path / "gold.wa").write_text(NAACL)
    lengths = [(3, 3), (3, 2)]
    a = gold_alignments.read(str(tmp_path / "gold.txt"), "pharaoh", lengths)
    b = gold_alignments.read(str(tmp_path / "gold.wa"), "naacl", lengths)
    assert a == b
    assert a.sure == (frozenset({(0, 0), (1, 1)}), frozenset({(0, 0), (1, 0)}))
    assert a.possible[0] == {(0, 0), (1, 1), (2, 1), (1, 2)}
    flipped = gold_alignments.read(
        str(tmp_path / "gold.txt"), "pharaoh", [(3, 3), (2, 3)], reverse=True
    )
    assert flipped.sure[1] == {(0, 0), (0, 1)}


@pytest.mark.parametrize(
    "text, fmt, message",
    [
        ("0-0 1:1\n0-0\n", "pharaoh", "line 1: '1:1' is not a Pharaoh link"),
        ("0-0\n", "pharaoh", "has 1 lines, for 2 sentence pairs"),
        ("0-0\n0-7\n", "pharaoh", "pair 2 has 3 source and 2 target words, but a link 0-7"),
        ("1 1 1 X\n", "naacl", "line 1: '1 1 1 X' is not 'sentence i j"),
        ("3 1 1\n", "naacl", "sentence 3 is not one of the 2 pairs"),
    ],
)
def test_bad_gold_is_named_by_file_and_line(tmp_path, text, fmt, message):
    (tmp_path / "g").write_text(text)
    with pytest.raises(ValueError, match=message):
        gold_alignments.read(str(tmp_path / "g"), fmt, [(3, 3), (3, 2)])


def test_the_en_es_gold_files_give_the_same_links(shared_data):
    folder = shared_data / "gold" / "en-es"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    sources = (folder / "en.txt").read_text().splitlines()
    targets = (folder / "es.txt").read_text().splitlines()
    lengths = [(len(s.split()), len(t.split())) for s, t in zip(sources, targets)]
    pharaoh = gold_alignments.read(str(folder / "gold.txt"), "pharaoh", lengths)
    naacl = gold_alignments.read(str(folder / "naacl.wa"), "naacl", lengths)
    assert pharaoh == naacl
    # Its README: 835 Sure and 560 Possible-only links.
    assert sum(map(len, pharaoh.sure)) == 835
    assert sum(len(p - s) for s, p in zip(pharaoh.sure, pharaoh.possible)) == 560
