#!/bin/bash
# The issue-16 runs and attacks, one after another (replaces runs.sh from erm-s0 on, reordered so that the
# ERM-vs-mixup attacks come before the MixupE runs). Each exact command goes to runs.log with its times.
cd /tmp/w16
. /work/wt16/.venv/bin/activate
echo $$ >> /tmp/gpumix-longruns.pids
ENV="OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE"
COMMON="--data fashion50 --dataset cifar10 --arch resnet18 --epochs 15 --global-batch-size 16 --warmup-epochs 0 --base-lr 0.0125 --peak-lr 0.0125 --milestones 8 12 --weight-decay 1e-4 --num-threads 1 --device cpu"
ATTACK="--data fashion50 --eps 0 2 4 8 16 32 --steps 5 --limit 500 --batch-size 250 --device cpu"
launch() {  # launch OUTFILE COMMAND...: run it niced in the background, record its PID and exact command, wait
  log=$1; shift
  echo "$(date -u +%FT%TZ) start: $ENV $*" >> runs.log
  env OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE nice -n 15 "$@" > "$log" 2>&1 &
  pid=$!
  echo $pid >> /tmp/gpumix-longruns.pids
  wait $pid
  echo "$(date -u +%FT%TZ) end rc=$? $log" >> runs.log
}
run() {
  out=$1; shift
  if [ -f runs/$out/summary.json ]; then echo "$(date -u +%FT%TZ) skip $out (done)" >> runs.log; return; fi
  extra=""
  if [ -f runs/$out/checkpoint.pt ]; then extra="--resume"; fi
  launch runs/$out.out gpumix-train $COMMON "$@" --output runs/$out $extra
}
whitebox() {  # and the clean error on the whole test split, to compare with the trainer's last evaluation
  [ -f attacks/$1-clean.json ] || launch attacks/$1-clean.out gpumix-attack runs/$1/checkpoint.pt --data fashion50 \
    --eps 0 --device cpu --json attacks/$1-clean.json
  [ -f attacks/$1.json ] || launch attacks/$1.out gpumix-attack runs/$1/checkpoint.pt $ATTACK --json attacks/$1.json
}
blackbox() {  # blackbox SOURCE TARGET
  [ -f attacks/$2-from-$1.json ] || launch attacks/$2-from-$1.out gpumix-attack runs/$2/checkpoint.pt $ATTACK \
    --source runs/$1/checkpoint.pt --json attacks/$2-from-$1.json
}

mkdir -p runs attacks
run erm-s0 --mixup-alpha 0 --seed 0
run mixup-s0 --mixup-alpha 1 --seed 0
run erm-s1 --mixup-alpha 0 --seed 1
run mixup-s1 --mixup-alpha 1 --seed 1
for r in erm-s0 mixup-s0 erm-s1 mixup-s1; do whitebox $r; done
for r in erm-s1 mixup-s0 mixup-s1; do blackbox erm-s0 $r; done
run mixupe-s0 --mixup-alpha 1 --loss mixupe --seed 0
run mixupe-s1 --mixup-alpha 1 --loss mixupe --seed 1
for r in mixupe-s0 mixupe-s1; do whitebox $r; done
for r in mixupe-s0 mixupe-s1; do blackbox erm-s0 $r; done
echo "$(date -u +%FT%TZ) all done" >> runs.log
