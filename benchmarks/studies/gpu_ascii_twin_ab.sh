# A/B of GPU encoding on the device tool: 3193e6a's rust_tokenizer.py (old, no ASCII twin) against
# this tree (new), interleaved, two rounds. Before carrying .cache/gpu13:
#   mkdir -p .cache/gpu13/old14 && git show 3193e6a:integrations/late_interaction/_encoding/rust_tokenizer.py \
#     > .cache/gpu13/old14/rust_tokenizer.py
python3 -m pip install -q --no-index --no-deps --target /tmp/site .cache/gpu13/whl/*.whl .cache/gpu13/ftk/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD/integrations:$PWD
python3 benchmarks/studies/gpu_tokenizer_scaling.py normalisers
rm -rf /tmp/old && mkdir -p /tmp/old && cp -r integrations /tmp/old/ && cp .cache/gpu13/old14/rust_tokenizer.py /tmp/old/integrations/late_interaction/_encoding/
ARGS="--checkpoint .cache/gpu13/whl/ckpt-fp16 --texts .cache/gpu13/scifact-docs.jsonl --batch-sizes 256 --repeat 2 --maxsim-docs 100 --dtypes bfloat16,float16"
for round in 1 2; do for v in old new; do
  if [ $v = new ]; then P=$PWD/integrations; else P=/tmp/old/integrations; fi
  mkdir -p $OUT/$v$round
  echo "== $v round $round"; PYTHONPATH=/tmp/site:$P:$PWD python3 -m benchmarks.studies.gpu $ARGS --results-dir $OUT/$v$round 2>&1 | grep "^|.*/bs"
done; done
