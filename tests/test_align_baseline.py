"""experiments.align_baseline: eflomal scored on gold Sure and Possible links (read and scored by
``evaluation.gold_alignments`` and ``evaluation.alignment``, tested there)."""

import json

import pytest

from experiments import align_baseline


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
    heldout = align_baseline.main(args + ["--heldout", "--length_buckets=0,4", f"--json={out}"])
    assert heldout["aer"] == 0.0 and json.loads(out.read_text())["heldout"] is True
    assert heldout["by_length"] == [
        {"words": "4+", "pairs": 1, "aer": 0.0, "precision": 1.0, "recall": 1.0}
    ]
    with pytest.raises(ValueError, match=r"length buckets \[4, 0\]"):
        align_baseline.main(args + ["--length_buckets=4,0"])
    gold.write_text("0-0 1-1 2-2 4-3\n")
    with pytest.raises(
        ValueError, match="gold.txt: pair 1 has 4 source and 4 target words, but a link 4-3"
    ):
        align_baseline.main(args)
    gold.write_text("0-0 1:2\n")
    with pytest.raises(ValueError, match="gold.txt, line 1: '1:2' is not a Pharaoh link"):
        align_baseline.main(args)
