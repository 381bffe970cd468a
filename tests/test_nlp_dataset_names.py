"""NLP dataset sources: an unknown name or an unreachable hub dataset is one ConfigError before any
training, listing what can be loaded."""

import pytest

from tickets.errors import ConfigError
from tickets.typed import from_dict
from domains.nlp.data import DatasetSpec, load_splits


@pytest.mark.parametrize("path", ["sst", "csvv", "my_reviews.csv"])
def test_unknown_source_is_refused_with_the_options(path):
    with pytest.raises(ConfigError) as err:
        from_dict(DatasetSpec, {"path": path})
    text = str(err.value)
    assert repr(path) in text and "glue: <task>" in text and "owner/name" in text and "data_files" in text


def test_did_you_mean_a_builder():
    with pytest.raises(ConfigError, match="did you mean 'csv'"):
        from_dict(DatasetSpec, {"path": "csvv"})


@pytest.mark.parametrize("spec", [{"path": "csv", "data_files": {"train": "x.csv"}, "validation_split": "train[90%:]",
                                   "test_split": "train[:10%]"}, {"path": "owner/name"},
                                  {"glue": "sst2"}, {}])
def test_loadable_sources_pass(spec):
    from_dict(DatasetSpec, spec)


def test_local_directory_passes(tmp_path):
    from_dict(DatasetSpec, {"path": str(tmp_path)})


def test_offline_hub_dataset_is_one_config_error(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    spec = from_dict(DatasetSpec, {"path": "nobody-here/no-such-dataset"})
    with pytest.raises(ConfigError, match="nobody-here/no-such-dataset.*not in the local datasets cache"):
        load_splits(spec, "classification")
