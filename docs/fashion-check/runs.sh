#!/bin/bash
# The issue-16 runs, one after another; each exact command goes to runs.log with its start/end time.
cd /tmp/w16
. /work/wt16/.venv/bin/activate
echo $$ >> /tmp/gpumix-longruns.pids
COMMON="--data fashion50 --dataset cifar10 --arch resnet18 --epochs 15 --global-batch-size 16 --warmup-epochs 0 --base-lr 0.0125 --peak-lr 0.0125 --milestones 8 12 --weight-decay 1e-4 --num-threads 1 --device cpu"
run() {
  out=$1; shift
  if [ -f runs/$out/summary.json ]; then echo "$(date -u +%FT%TZ) skip $out (done)" >> runs.log; return; fi
  extra=""
  if [ -f runs/$out/checkpoint.pt ]; then extra="--resume"; fi
  cmd="gpumix-train $COMMON $* --output runs/$out $extra"
  echo "$(date -u +%FT%TZ) start: OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE $cmd" >> runs.log
  OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE nice -n 15 $cmd > runs/$out.out 2>&1 &
  pid=$!
  echo $pid >> /tmp/gpumix-longruns.pids
  wait $pid
  echo "$(date -u +%FT%TZ) end rc=$? $out" >> runs.log
}
mkdir -p runs
run erm-s0 --mixup-alpha 0 --seed 0
run mixup-s0 --mixup-alpha 1 --seed 0
run erm-s1 --mixup-alpha 0 --seed 1
run mixup-s1 --mixup-alpha 1 --seed 1
run mixupe-s0 --mixup-alpha 1 --loss mixupe --seed 0
run mixupe-s1 --mixup-alpha 1 --loss mixupe --seed 1
echo "$(date -u +%FT%TZ) all done" >> runs.log
