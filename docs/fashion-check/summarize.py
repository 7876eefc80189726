"""Tables of the Fashion-MNIST check (markdown, on stdout) from runs/*/metrics.jsonl and attacks/*.json, and its two
plots into the folder given as argument. Run it in docs/fashion-check/ (or where the runs were made)."""
import json
import os
import sys

from gpumix.train.attack import plot_attack_errors, read_results
from gpumix.train.metrics import error_summary, plot_runs

PLOTS = sys.argv[1] if len(sys.argv) > 1 else "."
METHODS = {"ERM": "erm", "mixup (alpha 1)": "mixup", "MixupE (alpha 1)": "mixupe"}
SEEDS = (0, 1)


def pct(x):
    return f"{100 * x:.1f}"


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    mean = sum(values) / len(values)
    return f"{pct(mean)} ({pct(min(values))}-{pct(max(values))})" if len(values) > 1 else pct(mean)


done = {m: [s for s in SEEDS if os.path.exists(f"runs/{key}-s{s}/summary.json")] for m, key in METHODS.items()}
print("### Test error\n")
print("| run | seed | best error % (epoch) | mean error % of the last 5 epochs | last epoch |")
print("|---|---:|---:|---:|---:|")
summaries = {}
for method, key in METHODS.items():
    for s in done[method]:
        e = error_summary(f"runs/{key}-s{s}/metrics.jsonl", last=5)
        summaries[(method, s)] = e
        print(f"| {method} | {s} | {pct(e['best'])} ({e['best_epoch']}) | {pct(e['last_mean'])} | {e['epochs']} |")
print("\n| method | seeds | best error %: mean (min-max) | last-5 mean error %: mean (min-max) |")
print("|---|---:|---:|---:|")
for method in METHODS:
    if done[method]:
        print(f"| {method} | {len(done[method])} | {spread([summaries[(method, s)]['best'] for s in done[method]])} "
              f"| {spread([summaries[(method, s)]['last_mean'] for s in done[method]])} |")

print("\n### Clean error from gpumix-attack (eps 0, whole test split) against the trainer's last evaluation\n")
print("| run | gpumix-attack eps 0 error % | trainer's last-epoch error % | n |")
print("|---|---:|---:|---:|")
for method, key in METHODS.items():
    for s in done[method]:
        path = f"attacks/{key}-s{s}-clean.json"
        if os.path.exists(path):
            r = read_results(path)[0]
            last = json.load(open(path))["run"]["settings"]["checkpoint_last_eval"]
            print(f"| {method} seed {s} | {100 * r['top1_error']:.2f} | {100 * (1 - last['top1']):.2f} | {r['n']} |")


def attack_table(title, suffix):
    rows = {}
    for method, key in METHODS.items():
        for s in SEEDS:
            path = f"attacks/{key}-s{s}{suffix}.json"
            if os.path.exists(path):
                for r in read_results(path):
                    rows.setdefault((method, r["attack"], r["eps"]), {})[s] = r["top1_error"]
    if not rows:
        return
    print(f"\n### {title}\n")
    print("| method | attack | eps | error % seed 0 | error % seed 1 | mean |")
    print("|---|---|---:|---:|---:|---:|")
    for (method, attack, eps), by_seed in rows.items():
        cells = [pct(by_seed[s]) if s in by_seed else "n/a" for s in SEEDS]
        mean = sum(by_seed.values()) / len(by_seed)
        name = "FGSM" if attack == "fgsm" else "I-FGSM"
        print(f"| {method} | {name} | {eps:g} | {' | '.join(cells)} | {pct(mean)} |")


attack_table("White-box attacks (first 500 test images)", "")
attack_table("Black-box attacks, examples made on ERM seed 0 (first 500 test images)", "-from-erm-s0")

curves = {f"{m} seed {s}": f"runs/{k}-s{s}/metrics.jsonl" for m, k in METHODS.items() for s in done[m]}
if curves:
    plot_runs(curves, os.path.join(PLOTS, "learning-check-fashion-curves.png"), smooth=31,
              title="Fashion-MNIST, 50 training images per class, ResNet-18, 15 epochs")
white = {m: [f"attacks/{k}-s{s}.json" for s in SEEDS if os.path.exists(f"attacks/{k}-s{s}.json")]
         for m, k in METHODS.items()}
white = {f"{m} (white-box)": v for m, v in white.items() if v}
black = {m: [f"attacks/{k}-s{s}-from-erm-s0.json" for s in SEEDS
             if os.path.exists(f"attacks/{k}-s{s}-from-erm-s0.json")] for m, k in METHODS.items()}
black = {f"{m} (black-box from ERM seed 0)": v for m, v in black.items() if v}
if white:
    plot_attack_errors({**white, **black}, os.path.join(PLOTS, "learning-check-fashion-attacks.png"),
                       title="Fashion-MNIST: top-1 error under attack (mean of seeds, band: min-max)",
                       dashed=set(black))
