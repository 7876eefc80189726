#!/bin/bash
# Erasing's cost in gpumix-bench-operator, this checkout against another one, by turns (docs/benchmarks.md).
#
#     docs/scripts/erase_before_after.sh OTHER_CHECKOUT [ROUNDS]
#
# OTHER_CHECKOUT: a worktree of the older commit with its own .venv (an editable install), into which
# this checkout's gpumix/bench/operator.py and harness.py were copied, so both sides measure the same way.
# Per round: fp32 NCHW, then bf16 channels_last, each run here and there in turn.
set -euo pipefail
other=$1
rounds=${2:-3}
here=$(cd "$(dirname "$0")/../.." && pwd)
for r in $(seq "$rounds"); do
  for cfg in fp32 bf16cl; do
    args=(--repeats 9 --device cpu)
    [ "$cfg" = bf16cl ] && args+=(--dtype bf16 --channels-last)
    for side in new old; do
      dir=$here
      [ "$side" = old ] && dir=$other
      (cd "$dir" && .venv/bin/gpumix-bench-operator "${args[@]}" 2>/dev/null \
        | grep -E "^gpumix fused|adds" | sed "s/^/$side $cfg r$r: /")
    done
  done
done
