"""`noise=rs_da` is the published RS-DA (issue 28.3): Robust-XLT's counter-fitted synonym file with its rule, from a
path or from the pinned upstream file in the cache; offline without it, one line says where to put it. The
embedding-neighbour variant is `noise=code_switch`."""

from __future__ import annotations

import pytest
from helpers import FAST, ROOT, SHARED_DATA, compose_config, run_cli
from hydra.utils import instantiate

from xrobust.errors import XrobustError
from xrobust.noise import synonyms
from xrobust.noise.augmentation import DataAugmentation

COUNTERFITTED = SHARED_DATA / "synonyms" / "counterfitted_neighbors.json"
needs_file = pytest.mark.skipif(not COUNTERFITTED.is_file(), reason=f"Robust-XLT's synonym file not at {COUNTERFITTED}")


def test_rs_da_is_the_file_source_and_code_switch_the_embedding_one(tmp_path):
    rs_da = instantiate(compose_config(["noise=rs_da"], output_dir=tmp_path).noise, _partial_=True)()
    code_switch = instantiate(compose_config(["noise=code_switch"], output_dir=tmp_path).noise, _partial_=True)()
    assert (rs_da.name, rs_da.neighbours.source, rs_da.neighbours.path) == ("rs_da", "file", None)
    assert (code_switch.name, code_switch.neighbours.source) == ("code_switch", "embedding")
    assert DataAugmentation(name="rs_da").neighbours.source == "file", "the class default is the published method"


@needs_file
def test_the_pinned_sha256_is_the_shared_copy_of_robust_xlts_file():
    assert synonyms.sha256_of(COUNTERFITTED) == synonyms.SHA256
    assert synonyms.COMMIT in synonyms.URL and synonyms.URL.endswith("/counterfitted_neighbors.json")


def test_offline_without_the_file_one_line_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    method = DataAugmentation(name="rs_da", neighbours={"cache_dir": str(tmp_path / "nb")})
    target = synonyms.cached_path(str(tmp_path / "nb"))
    with pytest.raises(XrobustError) as caught:
        method.setup(None, None)
    message = str(caught.value)
    assert "\n" not in message and "HF_HUB_OFFLINE" in message
    assert str(target) in message and synonyms.URL in message and "noise.neighbours.path=" in message


@needs_file
def test_downloaded_once_into_the_cache_and_checked(tmp_path, monkeypatch):
    """The download (urllib, here from a file:// URL of the same bytes) lands at the cached path; later runs read
    it from there, offline; a file with other bytes is refused by its sha256."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    cache = str(tmp_path / "nb")
    path = synonyms.synonym_file(None, cache, url=COUNTERFITTED.as_uri())
    assert path == synonyms.cached_path(cache) and synonyms.sha256_of(path) == synonyms.SHA256
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    method = DataAugmentation(name="rs_da", neighbours={"cache_dir": cache}, seed=1)
    method.setup(None, None)
    assert method.word_neighbours["good"] and method.params()["word_rule"] == "robust_xlt_verbatim"
    path.write_text('{"good": ["bad"]}')
    with pytest.raises(XrobustError, match="sha256"):
        synonyms.synonym_file(None, cache)
    other = tmp_path / "other.json"
    other.write_text('{"good": ["fine"]}')
    with pytest.raises(XrobustError, match="sha256"):
        synonyms.download(other.as_uri(), tmp_path / "elsewhere" / "x.json")
    assert not (tmp_path / "elsewhere" / "x.json").exists()


def test_a_given_path_is_read_as_is(tmp_path):
    own = tmp_path / "mine.json"
    own.write_text('{"good": ["fine", "nice"]}')
    method = DataAugmentation(name="rs_da", neighbours={"path": str(own)}, seed=1)
    assert method.text_transform().neighbours == {"good": ["fine", "nice"]}


def test_offline_cli_run_ends_with_one_error_line(me5_dir, tmp_path):
    """What a user sees: `xrobust: error: ...` naming where the file goes, exit 2."""
    cache = tmp_path / "cache"
    args = [*FAST, "model=me5-small-6l", "noise=rs_da", f"paths.cache_dir={cache}", f"hydra.run.dir={tmp_path / 'r'}"]
    proc = run_cli(args, cwd=ROOT, env={"HF_HUB_OFFLINE": "1"}, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("xrobust: error:")]
    assert len(errors) == 1 and str(synonyms.cached_path(str(cache / "neighbours"))) in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
