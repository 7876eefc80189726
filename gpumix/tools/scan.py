"""``gpumix-scan``: decode every image of an ImageNet folder or DALI file list, and report the bad ones.

DALI's decoder stops the whole pipeline at the first corrupt JPEG, so a long
run should start from a dataset known to decode. This tool decodes each file
fully (Pillow, in parallel threads), reports every missing, empty, truncated
or undecodable file by path, and can write a clean DALI file list without
them. The list can be written anywhere: its paths follow gpumix's file-list
convention (``gpumix.file_list``: relative to the list's own folder
for the images under it, absolute for the others), so it feeds every gpumix
builder, ``gpumix-train`` and ``gpumix-bench`` as it is.
It exits 0 when every file is good and 1 when it found bad ones (2 on a usage
or input error).

    gpumix-scan /data/imagenet/train --output /data/imagenet/train.txt
"""
import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

from gpumix.atomic import write_atomically
from gpumix.file_list import format_file_list, read_file_list
from gpumix.imagecheck import why_undecodable

__all__ = ["main", "list_images", "check_image", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(data: str) -> list[tuple[str, int]]:
    """[(absolute path, label)] of a class-folder root or a file list (``read_file_list``'s convention)."""
    if os.path.isfile(data):
        return list(zip(*read_file_list(data)))
    if not os.path.isdir(data):
        raise FileNotFoundError(f"{data} does not exist")
    classes = sorted(e for e in os.listdir(data) if os.path.isdir(os.path.join(data, e)))
    if not classes:
        raise ValueError(f"{data}: no class subfolders (expected <root>/<class>/<image>)")
    entries = []
    root = os.path.abspath(data)
    for label, name in enumerate(classes):  # DALI's file reader labels classes in sorted order
        for dirpath, _, files in sorted(os.walk(os.path.join(root, name))):
            for file in sorted(files):
                if file.lower().endswith(IMAGE_EXTENSIONS):
                    entries.append((os.path.join(dirpath, file), label))
    return entries


def check_image(path: str) -> str | None:
    """None if the file at ``path`` decodes completely, else the reason it does not (the file is only read)."""
    if not os.path.lexists(path):
        return "missing: the file does not exist"
    try:
        with open(path, "rb") as f:
            return why_undecodable(f.read())
    except OSError as e:
        return f"{type(e).__name__}: {e}"


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 when every image decodes, 1 when some do not, 2 on a usage or input error."""
    p = argparse.ArgumentParser(prog="gpumix-scan", description=(__doc__ or "").splitlines()[0])
    p.add_argument("data", help="ImageNet class-folder root, or a DALI file list")
    p.add_argument("--output", help="write a clean DALI file list here (paths relative to its folder for the "
                                    "images under that folder, absolute for the others; it feeds gpumix as is)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decoding threads")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error(f"--workers must be >= 1, got {args.workers}")
    try:
        entries = list_images(args.data)
    except (OSError, ValueError) as e:
        print(f"gpumix-scan: error: {e}", file=sys.stderr)
        return 2
    paths = [path for path, _ in entries]
    with ThreadPoolExecutor(args.workers) as pool:
        problems = list(tqdm(pool.map(check_image, paths), total=len(paths), desc="scan", unit="img"))
    bad = [(path, why) for path, why in zip(paths, problems) if why is not None]
    for path, why in bad:
        print(f"BAD {path}: {why}")
    if args.output:
        good = [(path, label) for (path, label), why in zip(entries, problems) if why is None]
        output = os.path.abspath(args.output)
        try:
            write_atomically(output, format_file_list(output, [p for p, _ in good], [y for _, y in good]),
                             "the file list ")
        except OSError as e:
            print(f"gpumix-scan: error: {e}", file=sys.stderr)
            return 2
    print(f"scanned {len(paths)} images: {len(paths) - len(bad)} good, {len(bad)} bad")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
