"""``benchmarks.studies.gpu`` with ``sys.setswitchinterval($SWITCH)`` set first (GIL hand-over).

SWITCH=0.0005 python3 benchmarks/studies/gpu_switch_interval.py <gpu.py arguments>
"""

import os
import runpy
import sys

if os.environ.get("SWITCH"):
    sys.setswitchinterval(float(os.environ["SWITCH"]))
print("switchinterval", sys.getswitchinterval(), "rayon", os.environ.get("RAYON_NUM_THREADS"))
sys.argv = ["gpu", *sys.argv[1:]]
runpy.run_module("benchmarks.studies.gpu", run_name="__main__", alter_sys=True)
