set -x
cd /work/train33
. .venv/bin/activate
G=../shared/data/gold/en-es
python -m attn_research.main --workdir /work/main/workdirs/spa_luong_general_fwd \
  --config "experiments/configs/translate.py:data=tsv,path=/work/shared/data/spa-eng/spa.txt,model=rnn,attention=luong_general,luong_scales" \
  --config.total_steps=4000 --config.batch_size=64 --config.eval_every_steps=4000 \
  --config.data.eval_split=test --config.decode.examples=400
python -m attn_research.align --workdir /work/main/workdirs/spa_luong_general_fwd \
  --source /work/shared/data/gold/en-es/en.txt --target /work/shared/data/gold/en-es/es.txt \
  --gold /work/shared/data/gold/en-es/gold.txt --json /work/main/logs/luong_general_unguided_scores.json
