"""The YAML is the one source of defaults: no argument that a task config sets (for its model, its data or its image
encoder) has a default in Python as well, so what a test or a notebook builds is what train.py trains."""

from __future__ import annotations

import inspect
from typing import Any

import hydra
import pytest
from omegaconf import DictConfig, OmegaConf

from suite.configs import composed

TASKS = ("stn", "captioning", "video_captioning", "vqa", "nmt", "draw")
NO_DEFAULT = inspect.Parameter.empty


def declared_default(cls: type, name: str) -> Any:
    """The default of argument ``name`` where ``cls`` or a base class declares it (NO_DEFAULT if none); KeyError if
    no ``__init__`` in the class hierarchy takes it."""
    for klass in cls.__mro__:
        parameters = inspect.signature(klass.__init__).parameters if "__init__" in vars(klass) else {}
        if name in parameters:
            return parameters[name].default
    raise KeyError(f"{cls.__qualname__} takes no argument {name!r}")


def set_values(section: DictConfig) -> dict[str, Any]:
    """The arguments a config node sets itself (not ``???``, not sub-configs), resolved."""
    return {key: OmegaConf.to_container(section, resolve=True)[key] for key in section
            if key != "_target_" and not OmegaConf.is_missing(section, key)
            and not (isinstance(section[key], DictConfig) and "_target_" in section[key])}


IMAGE_TASKS = ("captioning", "video_captioning", "vqa")   # those with a model.encoder node


@pytest.mark.parametrize(("task", "node"), [(task, node) for task in TASKS for node in ("model", "data")]
                         + [(task, "model.encoder") for task in IMAGE_TASKS])
def test_every_option_a_task_config_sets_has_no_python_default(task, node):
    section = OmegaConf.select(composed(f"task={task}"), node)
    cls = hydra.utils.get_class(section._target_)
    with_defaults = {key: declared_default(cls, key) for key in set_values(section)
                     if declared_default(cls, key) is not NO_DEFAULT}
    assert not with_defaults, f"{cls.__qualname__} has Python defaults for what configs/task/{task}.yaml sets"


def test_the_check_finds_a_python_default_the_config_sets():
    class Model:
        def __init__(self, *, lr: float = 0.1, hops: int) -> None: ...

    assert declared_default(Model, "lr") == 0.1 and declared_default(Model, "hops") is NO_DEFAULT
    with pytest.raises(KeyError, match="takes no argument 'dim'"):
        declared_default(Model, "dim")
