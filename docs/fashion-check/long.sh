#!/bin/bash
# After pipeline.sh: one seed of mixup and ERM on a 30-epoch schedule, if time allows (hard stop 08:22 UTC).
cd /tmp/w16
. /work/wt16/.venv/bin/activate
echo $$ >> /tmp/gpumix-longruns.pids
while kill -0 23584 2>/dev/null; do sleep 10; done
COMMON="--data fashion50 --dataset cifar10 --arch resnet18 --epochs 30 --global-batch-size 16 --warmup-epochs 0 --base-lr 0.0125 --peak-lr 0.0125 --milestones 15 23 --weight-decay 1e-4 --num-threads 1 --device cpu"
stop=$(date -u -d "08:22" +%s)
for spec in "mixup30-s0 --mixup-alpha 1" "erm30-s0 --mixup-alpha 0"; do
  set -- $spec; out=$1; shift
  left=$(( stop - $(date -u +%s) ))
  if [ $left -lt 120 ]; then echo "$(date -u +%FT%TZ) no time left for $out" >> runs.log; break; fi
  echo "$(date -u +%FT%TZ) start (timeout ${left}s): OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE gpumix-train $COMMON $* --seed 0 --output runs/$out" >> runs.log
  env OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE timeout $left nice -n 15 gpumix-train $COMMON "$@" --seed 0 --output runs/$out > runs/$out.out 2>&1 &
  pid=$!
  echo $pid >> /tmp/gpumix-longruns.pids   # timeout's PID; its child, the trainer, below (a SIGSTOP must reach it)
  sleep 2; pgrep -P $pid >> /tmp/gpumix-longruns.pids
  wait $pid
  echo "$(date -u +%FT%TZ) end rc=$? runs/$out" >> runs.log
done
