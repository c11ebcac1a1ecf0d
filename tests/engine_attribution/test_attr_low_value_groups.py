"""Credit groups worth next to nothing on the evaluation split earn nothing (credit.low_value_sets at build).

Built with ``IndexBuilder`` on synthetic projected gradients, so the geometry is known: honest rows point along
the directions the evaluation queries need (their values are positive), junk rows along directions no
evaluation query uses (their values are about zero, measured precisely). Gradient clustering puts the junk in
groups of its own; those groups fail the value test and their rows get no credit, whoever owns them."""

import numpy as np
import pytest
import torch

from attribution.engine.build import IndexBuilder, IndexConfig
from attribution.engine.gradients import GradientBlock
from attribution.engine.projection import ProjectionSpec

K = 32


def build(tmp_path, low_value_ratio=0.5, junk_accounts=lambda j: "junk"):
    generator = torch.Generator().manual_seed(3)
    topics = torch.eye(K)
    honest = torch.cat([topics[t] * 2 + 0.3 * torch.randn(15, K, generator=generator) for t in range(4)])
    # Junk lives in dimensions no evaluation query uses (8 and up), with random signs (random labels).
    off_topic = torch.zeros(K)
    off_topic[8:] = 1.0
    junk = torch.cat([topics[10 + t] * 3 * torch.sign(torch.randn(15, 1, generator=generator))
                      + 0.3 * torch.randn(15, K, generator=generator) * off_topic for t in range(3)])
    evals = torch.cat([topics[t] + 0.3 * torch.randn(10, K, generator=generator) * (1 - off_topic) for t in range(4)])
    config = IndexConfig(ProjectionSpec(seed=1, k=K, kind="orthogonal"), low_value_ratio=low_value_ratio,
                         group_size=8, min_groups=8)
    builder = IndexBuilder(tmp_path / f"idx-{low_value_ratio}", config, [GradientBlock("w", K, 1, False)], "sha256:x")
    builder.add(honest, [f"h{i}" for i in range(60)], [f"c{i % 6}" for i in range(60)])
    builder.add(junk, [f"j{i}" for i in range(45)], [junk_accounts(j) for j in range(45)])
    return builder.finalize(evals)


def test_groups_of_rows_worth_nothing_earn_nothing_and_honest_groups_keep_their_credit(tmp_path):
    index = build(tmp_path)
    credit = index.manifest["credit"]
    tables = index.credit()
    is_junk = np.array([r.startswith("j") for r in index.row_ids])
    off = build(tmp_path, low_value_ratio=None)
    # Rows of groups never discovered on any answer, which earned credit without the rule (a group is also
    # silenced when none of its rows has credit left anyway, e.g. one row of negative value).
    silenced = np.isinf(tables.group_noise[tables.row_group]) & (off.credit().row_credit > 0)
    assert credit["low_value_groups"] >= 1 and 30 <= credit["low_value_group_rows"]
    assert not (silenced & ~is_junk).any()  # no honest row is in a group the rule silenced
    assert np.isinf(tables.group_noise[tables.row_group[is_junk]]).mean() >= 2 / 3  # most junk is
    assert (tables.row_credit[silenced] == 0).all() and (tables.row_fallback[silenced] == 0).all()
    assert (tables.row_credit[~is_junk] > 0).mean() > 0.9
    # Switched off, the same junk keeps its per-row credit.
    assert off.manifest["credit"]["low_value_groups"] == 0
    assert off.credit().row_credit[is_junk].sum() > 2 * tables.row_credit[is_junk].sum()


def test_the_group_rule_does_not_look_at_accounts(tmp_path):
    """The same junk in one account or in 45 one-row accounts: the same rows get no credit."""
    one = build(tmp_path / "one")
    spread = build(tmp_path / "spread", junk_accounts=lambda j: f"junk{j}")
    assert np.array_equal(one.credit().row_credit, spread.credit().row_credit)


@pytest.mark.parametrize("bad", [{"low_value_ratio": 0.0}, {"low_value_ratio": 1.5}, {"low_value_fdr": 0.0}])
def test_bad_low_value_settings_are_refused(bad):
    with pytest.raises(ValueError, match="low_value"):
        IndexConfig(ProjectionSpec(seed=1, k=K), **bad)
