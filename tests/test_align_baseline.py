"""experiments.align_baseline: eflomal scored on gold Sure and Possible links."""

import json

import pytest

from experiments import align_baseline


def test_gold_reader_marks_possible_links(tmp_path):
    gold = tmp_path / "gold.txt"
    gold.write_text("0-0 1-2p 2?1\n\n3-3\n")
    sure, possible = align_baseline.read_pharaoh_gold(str(gold))
    assert sure == [{(0, 0)}, set(), {(3, 3)}]
    assert possible == [{(0, 0), (1, 2), (2, 1)}, set(), {(3, 3)}]
    gold.write_text("0-0\n1:2\n")
    with pytest.raises(ValueError, match=r"gold.txt:2: '1:2' is not a link"):
        align_baseline.read_pharaoh_gold(str(gold))


def test_precision_and_recall_by_hand():
    predicted = [{(0, 0), (1, 1), (2, 2)}, {(0, 1)}]
    sure = [{(0, 0), (1, 2)}, {(0, 0)}]
    possible = [{(0, 0), (1, 2), (1, 1)}, {(0, 0)}]
    # A ∩ P: (0,0), (1,1) of 4 links; A ∩ S: (0,0) of 3 sure links.
    assert align_baseline.precision_recall(predicted, sure, possible) == (2 / 4, 1 / 3)


def test_baseline_command_on_a_toy_corpus(tmp_path):
    corpus = tmp_path / "corpus.tsv"
    determiners, nouns = {"The": "El", "A": "Un"}, {"cat": "gato", "dog": "perro", "boy": "niño"}
    verbs = {"sleeps": "duerme", "eats": "come", "runs": "corre"}
    pairs = [
        (f"{d} {n} {v}.", f"{d_es} {nouns[n]} {verbs[v]}.")
        for d, d_es in determiners.items()
        for n in nouns
        for v in verbs
    ]
    corpus.write_text("".join(f"{en}\t{es}\tCC-BY\n" for en, es in pairs * 10))
    (tmp_path / "en.txt").write_text("the dog sleeps .\n")
    (tmp_path / "es.txt").write_text("el perro duerme .\n")
    gold = tmp_path / "gold.txt"
    gold.write_text("0-0 1-1 2-2 3-3p\n")
    args = [f"--corpus={corpus}", f"--gold={gold}", "--tokenize"]
    args += [f"--source={tmp_path / 'en.txt'}", f"--target={tmp_path / 'es.txt'}"]
    out = tmp_path / "out.json"
    result = align_baseline.main(args + [f"--json={out}"])
    assert result["aer"] == 0.0 and result["recall"] == 1.0
    assert json.loads(out.read_text())["corpus_pairs"] == 180
    gold.write_text("0-0 1-1 2-2 4-3\n")
    with pytest.raises(ValueError, match="gold.txt:1: a link beyond the pair's 4 source"):
        align_baseline.main(args)
