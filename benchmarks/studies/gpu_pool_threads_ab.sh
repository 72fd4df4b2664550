# A/B of encoding on two GPUs (device tool, kind nvidia-h200-x2): old = the process pool of
# 3193e6a (pool.py, pool_methods.py: one worker process per GPU), new = this tree (one thread
# per GPU in this process, device_threads.py). Interleaved, two rounds, bfloat16, batch 256;
# then the GPU tests of the pool. Before carrying .cache/gpu13:
#   for f in pool pool_methods; do git show 3193e6a:integrations/late_interaction/_encoding/$f.py \
#     > .cache/gpu13/old14/$f.py; done
python3 -m pip install -q --no-index --no-deps --target /tmp/site .cache/gpu13/whl/*.whl 2>/dev/null
rm -rf /tmp/old && mkdir -p /tmp/old && cp -r integrations /tmp/old/ && cp .cache/gpu13/old14/pool.py .cache/gpu13/old14/pool_methods.py /tmp/old/integrations/late_interaction/_encoding/
ARGS="--checkpoint .cache/gpu13/whl/ckpt-fp16 --texts .cache/gpu13/scifact-docs.jsonl --batch-sizes 256 --repeat 2 --maxsim-docs 100 --dtypes bfloat16 --devices cuda:0,cuda:1"
nproc
for round in 1 2; do for v in old new; do
  if [ $v = new ]; then P=$PWD/integrations; else P=/tmp/old/integrations; fi
  mkdir -p $OUT/$v$round
  echo "== $v round $round"; PYTHONPATH=/tmp/site:$P:$PWD python3 -m benchmarks.studies.gpu $ARGS --results-dir $OUT/$v$round 2>&1 | grep "^|.*/bs\|pool \|^ours"
done; done
PYTHONPATH=/tmp/site:$PWD/integrations:$PWD python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts="" tests/core/test_encode_pool.py tests/core/test_encode_pipeline.py 2>&1 | tail -2
