"""Hub data is downloaded in the datamodule's `prepare_data` (one process per node) and only read from the cache
in `setup` (every rank): a rank whose `setup` runs after the node's `prepare_data` asks the Hub nothing."""

from __future__ import annotations

import glob
import shutil

from helpers import compose_config
from helpers.tiny_models import tiny_checkpoint
from hydra.utils import instantiate
from test_hub_data import LANGUAGES, SPLIT_ROWS, write_mirror

from xrobust.data.task import TaskSpec


def test_prepare_data_downloads_and_setup_on_another_rank_reads_only_the_cache(tmp_path, monkeypatch):
    mirror = write_mirror(tmp_path / "hub", "facebook/xnli")
    tokenizer = tiny_checkpoint(tmp_path / "tiny")
    overrides = ["task=xnli", f"task.hub_id='{mirror}'", f"paths.cache_dir='{tmp_path / 'cache'}'"]
    cfg = compose_config(overrides, output_dir=tmp_path)
    task = TaskSpec.from_config(cfg.task)

    def datamodule():
        return instantiate(cfg.data, _partial_=True)(task=task, tokenizer_path=tokenizer)

    datamodule().prepare_data()  # the node's first process, as Lightning calls it
    arrow = glob.glob(str(tmp_path / "cache" / "datasets" / "**" / "*.arrow"), recursive=True)
    assert len(arrow) == 2 + len(LANGUAGES["xnli"])  # train-en, dev-en, and each language's test split
    shutil.rmtree(mirror)  # the Hub is out of reach from here on

    monkeypatch.setenv("LOCAL_RANK", "1")
    other_rank = datamodule()
    other_rank.setup()
    assert other_rank.train_rows["premise"] == [f"premise en train {i}" for i in range(SPLIT_ROWS["train"])]
    assert list(other_rank.test_sets) == LANGUAGES["xnli"]
    assert other_rank.raw_test_sets["de"]["premise"][2] == "premise de test 2"
    assert other_rank.data_provenance["test-de"]["num_rows"] == SPLIT_ROWS["test"]
