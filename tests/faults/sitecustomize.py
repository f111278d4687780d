"""Fault injection for tests/integration/test_faults_checkpoints.py and tests/integration/test_resume.py: SIGKILL this process at an exact
point, chosen by ``MFTI_TEST_KILL`` (no hook in the product: the points are wrapped here, as the modules load).

Put this folder first on the PYTHONPATH of a ``python -m mfti_lightning.cli.train ...`` subprocess. Points:

- ``before_val:<step>``: when the validation of optimizer step <step> starts;
- ``after_val:<step>``: when that validation has ended and the best checkpoint was written (the periodic
  checkpoint callback's ``on_validation_end`` starts);
- ``mid_write:<step>``: while the periodic checkpoint of <step> is written (its partial file holds the bytes,
  not yet renamed);
- ``export``: while the best checkpoint is exported to hf/ (model and tokenizer written, template.json not).
"""

import importlib.abc
import importlib.util
import os
import signal
import sys

POINT, _, STEP = os.environ.get("MFTI_TEST_KILL", "").partition(":")


def die():
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def patch_module(mod):
    cls = mod.MFTIModule
    original = cls.on_validation_epoch_start

    def on_validation_epoch_start(self):
        if POINT == "before_val" and self.global_step == int(STEP):
            die()
        return original(self)

    cls.on_validation_epoch_start = on_validation_epoch_start


def patch_checkpointing(mod):
    original_end = mod.PeriodicCheckpoint.on_validation_end

    def on_validation_end(self, trainer, pl_module):
        if POINT == "after_val" and trainer.global_step == int(STEP):
            die()
        return original_end(self, trainer, pl_module)

    mod.PeriodicCheckpoint.on_validation_end = on_validation_end
    original_save = mod.save_atomic

    def save_atomic(path, write):
        def killing_write(f):
            write(f)
            f.flush()
            die()

        step = f"step{int(STEP):06d}" if STEP else None
        killing = POINT == "mid_write" and path.parent.name == "periodic" and path.name.startswith(step or "-")
        return original_save(path, killing_write if killing else write)

    mod.save_atomic = save_atomic


def patch_template(mod):
    original = mod.Template.save

    def save(self, out_dir, *a, **kw):
        if POINT == "export" and str(out_dir).endswith(".partial"):
            die()
        return original(self, out_dir, *a, **kw)

    mod.Template.save = save


PATCHES = {
    "mfti_lightning.train.module": patch_module,
    "mfti_lightning.train.checkpoint_callbacks": patch_checkpointing,
    "mfti_lightning.core.template": patch_template,
}


class _After(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Runs a patch right after its module has loaded."""

    def find_spec(self, name, path, target=None):
        if name not in PATCHES:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None:
            return None
        self._loaders = getattr(self, "_loaders", {})
        self._loaders[name] = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._loaders[spec.name].create_module(spec)

    def exec_module(self, module):
        self._loaders[module.__name__].exec_module(module)
        PATCHES[module.__name__](module)


if POINT:
    sys.meta_path.insert(0, _After())
