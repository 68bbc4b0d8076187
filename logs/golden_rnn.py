"""First-step losses of tiny translation configs: python golden_rnn.py old|new (run from a tree)."""
import json, os, sys, tempfile
from experiments.configs import translate
from attn_research.train import train_and_evaluate

CASES = {
    "additive": ("tiny", "tiny"),
    "none": ("attention=none,tiny", "attention=none,tiny"),
    "luong_general_local_p": ("attention=luong_local_p,luong_scales,tiny", "attention=luong,score=general,positions=local_p,window=8,luong_scales,tiny"),
    "luong_dot_scales": ("attention=luong_dot,luong_scales,tiny", "attention=luong,score=dot,luong_scales,tiny"),
    "luong_concat_local_m": ("attention=luong_concat,tiny", "attention=luong,score=concat,tiny"),
    "transformer_local": ("model=transformer,attention=local,window=8,tiny", "model=transformer,attention=local,window=8,tiny"),
}
which = sys.argv[1]
out = {}
for name, args in CASES.items():
    config = translate.get_config(args[which == "new"])
    config.total_steps, config.log_every_steps, config.eval_every_steps = 2, 1, 1000
    config.checkpoint_every_steps = 1000
    with tempfile.TemporaryDirectory() as d:
        train_and_evaluate(config, d)
        rows = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))]
        out[name] = [r["train/loss"] for r in rows if "train/loss" in r]
    print(name, out[name], flush=True)
json.dump(out, open(f"/work/main/logs/golden_{which}.json", "w"), indent=1)
