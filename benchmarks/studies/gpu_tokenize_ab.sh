# A/B of GPU encoding on the device tool: main at 4a6b1e0 (old), this tree with the 4D padding
# mask probe forced off (no4d), and this tree (new). Before carrying .cache/gpu13:
#   mkdir -p .cache/gpu13/old && for f in precut rust_tokenizer batches pipeline; do
#     git show 4a6b1e0:integrations/late_interaction/_encoding/$f.py > .cache/gpu13/old/$f.py; done
# (The 4D-mask variant was dropped after this run; at HEAD "new" and "no4d" are the same code.)
python3 -m pip install -q --no-index --no-deps --target /tmp/site .cache/gpu13/whl/*.whl 2>/dev/null
rm -rf /tmp/old /tmp/no4d && mkdir -p /tmp/old /tmp/no4d && cp -r integrations /tmp/old/ && cp -r integrations /tmp/no4d/ && cp .cache/gpu13/old/*.py /tmp/old/integrations/late_interaction/_encoding/
sed -i 's/    exact = plain.shape == four_d.shape and bool(torch.equal(plain, four_d))/    exact = False/' /tmp/no4d/integrations/late_interaction/_encoding/padding_mask.py
grep -n "exact = " /tmp/no4d/integrations/late_interaction/_encoding/padding_mask.py
ARGS="--checkpoint .cache/gpu13/whl/ckpt-fp16 --texts .cache/gpu13/scifact-docs.jsonl --batch-sizes 64,256 --repeat 2 --maxsim-docs 100 --dtypes bfloat16"
for round in 1 2; do
for v in old no4d new; do
  if [ $v = new ]; then P=$PWD/integrations; else P=/tmp/$v/integrations; fi
  mkdir -p $OUT/$v$round
  echo "== $v round $round"; PYTHONPATH=/tmp/site:$P:$PWD python3 -m benchmarks.studies.gpu $ARGS --results-dir $OUT/$v$round 2>&1 | grep "^|.*/bs"
done; done
