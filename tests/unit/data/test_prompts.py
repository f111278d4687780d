"""k-shot prompts: pool, seeding, never the test sentence, identical across processes, shots > pool."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, compose

from mfti_lightning.core.errors import ConfigError
from mfti_lightning.core.template import from_config
from mfti_lightning.data.prepare import EvalSet, eval_prompts, eval_sets, shots_for


def _sets(tmp_path, *overrides):
    cfg = compose(["shots=k8", *overrides], tmp_path)
    return cfg, eval_sets(cfg, "test"), from_config(cfg.template)


def test_pool_is_flores_dev_without_evaluated(tmp_path):
    cfg, sets, _ = _sets(tmp_path)
    val = eval_sets(cfg, "val")
    for es in val:
        assert len(es.pool) == 997 - len(es.sources)
        assert not set(es.sources) & {s for s, _ in es.pool}


def test_shots_seeded_distinct_and_never_the_test_sentence(tmp_path):
    cfg, sets, t = _sets(tmp_path)
    es = sets[0]
    a = [shots_for(es, i, 8, 42) for i in range(len(es.sources))]
    assert a == [shots_for(es, i, 8, 42) for i in range(len(es.sources))]
    assert a != [shots_for(es, i, 8, 43) for i in range(len(es.sources))]
    assert all(len(s) == 8 and len(set(s)) == 8 for s in a)
    # a pool that contains every test sentence: the test sentence is never a demonstration
    pool = list(zip(es.sources, es.references))
    small = EvalSet(es.direction, "test", es.sources, es.references, pool)
    for i in range(len(es.sources)):
        assert es.sources[i] not in [s for s, _ in shots_for(small, i, 8, 1)]
    prompts = eval_prompts(es, t, 8, 42)
    assert prompts[0].count("Translation: [") == 9 and prompts[0].endswith(
        t.render_prefix(es.sources[0], *es.direction)
    )


@pytest.mark.subprocess
@pytest.mark.timeout(120)
def test_identical_prompts_in_another_process(tmp_path):
    cfg, sets, t = _sets(tmp_path)
    here = [p for es in sets for p in eval_prompts(es, t, 8, 42)]
    code = (
        "import json, sys; sys.path.insert(0, 'tests'); from conftest import compose\n"
        "from mfti_lightning.data.prepare import eval_sets, eval_prompts\n"
        "from mfti_lightning.core.template import from_config\n"
        f"cfg = compose(['shots=k8'], {str(tmp_path / 'child')!r})\n"
        "t = from_config(cfg.template)\n"
        "print(json.dumps([p for es in eval_sets(cfg, 'test') for p in eval_prompts(es, t, 8, 42)]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}  # another hash salt
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=100, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == here


def test_shots_larger_than_pool(tmp_path):
    cfg = compose(["shots.k=990", "lang_pairs.val_size=16"], tmp_path)
    with pytest.raises(ConfigError, match="shots.k=990.*only 981"):
        eval_sets(cfg, "val")
