"""A study's mask section compares finders (IMP against at-init scorers) from one θ0, each ticket
against the other finder's ticket of the nearest density."""

from pathlib import Path

import pytest
import yaml
from conftest import vision_config

from tickets.artifact import Ticket
from tickets.mask_overlap import ALL, expected_random_overlap, overlap
from tickets.masks import Mask
from tickets.methods import make_runner
from tickets.study import load_study
from tickets.study_masks import _finder_rows, finder_of, nearest_levels
from tickets.study_report import read_study, report
from tickets.study_run import run_study
import torch


def finders_study(tmp_path: Path) -> Path:
    base = vision_config(**{"pruning.levels": 3, "pruning.fraction": 0.5, "pruning.scope": "global",
                            "pruning.groups": [], "train.steps": 20, "controls": []})
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    study = {"name": "finders", "seeds": [0, 1], "analyses": ["masks"], "experiments": [
        {"label": "imp", "config": "base.yaml"},
        {"label": "init", "config": "base.yaml",
         "overrides": {"pruning.method": "at_init", "pruning.compressions": [4]},
         "grid": {"pruning.scorer": ["snip", "synflow"]}},
        {"label": "wide", "config": "base.yaml",  # another model: never compared with the others
         "overrides": {"pruning.method": "at_init", "pruning.scorer": "snip", "pruning.compressions": [4],
                       "domain.model": "conv_2", "domain.width": 4}}]}
    path = tmp_path / "finders.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The study, run once for the tests that only read it."""
    tmp = tmp_path_factory.mktemp("finders")
    study = load_study(finders_study(tmp), tmp / "out")
    return run_study(study, make_runner, show_progress=False)


def mask(label: str, info: dict, level: int) -> Mask:
    run = next(e["run"] for e in info["entries"] if e["label"] == label)
    return Ticket.load(f"{run}/level_{level:02d}/ticket", with_rewind=False).mask


def test_finders_are_compared_from_one_theta0_at_the_nearest_density(finished):
    directory = finished
    info = read_study(directory)
    md = report(directory).read_text()
    section = md[md.index("## Mask overlap"):]
    section = section[:section.index("\n## ", 1)] if "\n## " in section[1:] else section
    rows = [line for line in section.splitlines() if line.startswith("| finders: ")]
    # init[scorer=snip] and [scorer=synflow] against imp and against each other; nothing with "wide"
    assert len(rows) == 3 and not any("wide" in r for r in rows), rows
    # one at-init ticket (25%) against IMP's level 2 (0.5^2 = 25%), mean over the two seeds
    row = next(r for r in rows if r.startswith("| finders: imp (imp) vs init[scorer=snip] (at_init/snip) |"))
    pairs = [(mask(f"imp@seed{k}", info, 2), mask(f"init[scorer=snip]@seed{k}", info, 1)) for k in (0, 1)]
    assert "| 2 / 1 | 25.0 |" in row
    jaccard = sum(overlap(a, b)[ALL].jaccard for a, b in pairs) / 2
    chance = sum(expected_random_overlap(a, b)[ALL].jaccard for a, b in pairs) / 2
    assert f"| 2 | {jaccard:.4f} | {chance:.4f} |" in row
    snip_vs_synflow = next(r for r in rows if "snip" in r and "synflow" in r)
    assert "| 1 / 1 |" in snip_vs_synflow
    # the shared finder: across seeds only (imp@seed0 vs imp@seed1), never a finder row
    assert any(line.startswith("| imp: seed vs seed |") for line in section.splitlines())


def test_nearest_levels_match_within_ten_percent_only():
    def of(density):
        m = torch.zeros(1000, dtype=torch.bool)
        m[:int(round(density * 1000))] = True
        return Mask({"w": m})

    imp = {level: of(0.8 ** level) for level in range(1, 15)}
    at_init = {1: of(0.10), 2: of(0.02), 3: of(0.5)}
    # 10% -> level 10 (10.7%); 2% has no IMP level within 10% (4.4% is the sparsest); 50% -> level 3 (51.2%)
    assert nearest_levels(at_init, imp) == [(1, 10), (3, 3)]


def test_runs_from_different_theta0_are_not_finders_compared(finished):
    """Two runs whose θ0 differ (here: two seeds, passed off as one) give no finder row, whatever
    their entries say."""
    info = read_study(finished)
    by_label = {e["label"]: e for e in info["entries"]}
    a = dict(by_label["imp@seed0"])
    b = dict(by_label["init[scorer=snip]@seed1"], seed=0)
    masks = {e["label"]: {lvl: mask(e["label"], info, lvl) for lvl in ((1, 2, 3) if "imp" in e["label"] else (1,))}
             for e in (a, b)}
    assert _finder_rows([a, b], masks) == []
    b_same = dict(by_label["init[scorer=snip]@seed0"])
    masks[b_same["label"]] = {1: mask(b_same["label"], info, 1)}
    assert len(_finder_rows([a, b_same], masks)) == 1
    assert finder_of(a["run"]) == "imp" and finder_of(b["run"]) == "at_init/snip"


@pytest.mark.parametrize("bad", [b"", b"not tensors"])
def test_a_damaged_init_file_is_refused_not_compared(tmp_path, bad):
    from tickets.errors import ArtifactError

    study = load_study(finders_study(tmp_path), tmp_path / "out")
    directory = run_study(study, make_runner, show_progress=False)
    info = read_study(directory)
    run = Path(next(e["run"] for e in info["entries"] if e["label"] == "imp@seed0"))
    (run / "init.safetensors").unlink()  # the tickets' rewind files may be links to it: damage this one only
    (run / "init.safetensors").write_bytes(bad)
    with pytest.raises(ArtifactError, match="init.safetensors"):
        report(directory)
