"""``gpumix-scan``: decode every image of an ImageNet folder or DALI file list, and report the bad ones.

DALI's decoder stops the whole pipeline at the first corrupt JPEG, so a long
run should start from a dataset known to decode. This tool decodes each file
fully (Pillow, in parallel threads), reports every empty, truncated or
undecodable file by path, and can write a clean DALI file list without them.
It exits 0 when every file is good and 1 when it found bad ones (2 on a usage
or input error).

    gpumix-scan /data/imagenet/train --output /data/imagenet/train_clean.txt
"""
import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

from gpumix._imagecheck import why_undecodable

__all__ = ["main", "list_images", "check_image"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(data):
    """[(relative path, label)] and the root they are relative to, for a class-folder root or a file list."""
    if os.path.isfile(data):
        root = os.path.dirname(os.path.abspath(data))
        entries = []
        with open(data, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                path, _, label = line.rstrip("\n").rpartition(" ")
                if not path or not label.strip().lstrip("-").isdigit():
                    raise ValueError(f"{data}:{number}: expected '<path> <label>', got {line.strip()!r}")
                entries.append((path, int(label)))
        if not entries:
            raise ValueError(f"{data}: the file list is empty")
        return root, entries
    if not os.path.isdir(data):
        raise FileNotFoundError(f"{data} does not exist")
    classes = sorted(e for e in os.listdir(data) if os.path.isdir(os.path.join(data, e)))
    if not classes:
        raise ValueError(f"{data}: no class subfolders (expected <root>/<class>/<image>)")
    entries = []
    for label, name in enumerate(classes):  # DALI's file reader labels classes in sorted order
        for dirpath, _, files in sorted(os.walk(os.path.join(data, name))):
            for file in sorted(files):
                if file.lower().endswith(IMAGE_EXTENSIONS):
                    entries.append((os.path.relpath(os.path.join(dirpath, file), data), label))
    return os.path.abspath(data), entries


def check_image(path):
    """None if the file at ``path`` decodes completely, else the reason it does not."""
    try:
        with open(path, "rb") as f:
            return why_undecodable(f.read())
    except OSError as e:
        return f"{type(e).__name__}: {e}"


def main(argv=None):
    p = argparse.ArgumentParser(prog="gpumix-scan", description=__doc__.splitlines()[0])
    p.add_argument("data", help="ImageNet class-folder root, or a DALI file list")
    p.add_argument("--output", help="write a clean DALI file list (paths relative to the data root) here")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decoding threads")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error(f"--workers must be >= 1, got {args.workers}")
    try:
        root, entries = list_images(args.data)
    except (OSError, ValueError) as e:
        print(f"gpumix-scan: error: {e}", file=sys.stderr)
        return 2
    paths = [os.path.join(root, rel) for rel, _ in entries]
    with ThreadPoolExecutor(args.workers) as pool:
        problems = list(tqdm(pool.map(check_image, paths), total=len(paths), desc="scan", unit="img"))
    bad = [(path, why) for path, why in zip(paths, problems) if why is not None]
    for path, why in bad:
        print(f"BAD {path}: {why}")
    if args.output:
        output = os.path.abspath(args.output)
        if os.path.dirname(output) != root:
            print(f"gpumix-scan: note: the list's paths are relative to {root}; pass it to DALI with file_root={root}",
                  file=sys.stderr)
        tmp = output + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for (rel, label), why in zip(entries, problems):
                if why is None:
                    f.write(f"{rel} {label}\n")
        os.replace(tmp, output)
    print(f"scanned {len(paths)} images: {len(paths) - len(bad)} good, {len(bad)} bad")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
