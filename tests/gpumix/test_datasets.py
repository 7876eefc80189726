"""gpumix.datasets: the one place for statistics, class counts and what a ``data`` argument is."""
import pytest

from gpumix.datasets import DATASETS, NUM_CLASSES, STATS, DataSource, SourceKind, data_source


def test_every_dataset_has_statistics_and_a_class_count():
    assert set(STATS) == set(NUM_CLASSES) == set(DATASETS) == {"imagenet", "cifar10", "cifar100"}
    for stats in STATS.values():
        assert len(stats.mean) == len(stats.std) == 3
        assert all(0 < m < 255 for m in stats.mean) and all(0 < s < 128 for s in stats.std)
    # torchvision's ImageNet statistics in pixel units
    assert STATS["imagenet"].mean == pytest.approx(tuple(255 * v for v in (0.485, 0.456, 0.406)))
    assert STATS["imagenet"].std == pytest.approx(tuple(255 * v for v in (0.229, 0.224, 0.225)))


def _folder(tmp_path, classes):
    for name in classes:
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.jpg").write_bytes(b"x")
    return tmp_path


def test_a_class_folder_root_counts_its_classes(tmp_path):
    source = data_source(_folder(tmp_path, ["n1", "n2", "n3"]))
    assert source == DataSource(SourceKind.FOLDER, (str(tmp_path),), num_classes=3)
    assert source.path == str(tmp_path) and "class-folder root" in source.describe()


def test_a_file_list_knows_its_largest_label(tmp_path):
    listing = tmp_path / "train.txt"
    listing.write_text("a.jpg 0\nb c.jpg 6\n\n")
    source = data_source(listing)
    assert (source.kind, source.paths, source.num_classes) == (SourceKind.FILE_LIST, (str(listing),), 7)


def test_webdataset_shards_come_with_their_indexes(tmp_path):
    shards = [tmp_path / f"s{i}.tar" for i in range(2)]
    for shard in shards:
        shard.write_bytes(b"")
        shard.with_suffix(".idx").write_text("")
    source = data_source(shards)
    assert source.kind is SourceKind.WEBDATASET and source.num_classes is None
    assert source.index_files == tuple(str(s.with_suffix(".idx")) for s in shards)


def test_a_bad_file_list_line_names_the_file_and_line(tmp_path):
    listing = tmp_path / "train.txt"
    listing.write_text("a.jpg 0\nb.jpg\n")
    with pytest.raises(ValueError, match=r"train\.txt:2: expected '<path> <label>', got 'b\.jpg'"):
        data_source(listing)


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data: .*nowhere does not exist"):
        data_source(tmp_path / "nowhere")


def test_a_folder_without_classes_is_refused(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="has no class subfolders"):
        data_source(tmp_path)


def test_a_shard_without_index_is_refused(tmp_path):
    (tmp_path / "s.tar").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"s\.tar has no index .*s\.idx"):
        data_source([tmp_path / "s.tar"])
