"""What the pipeline's graph components share: the answers Rasa asks every component for, and the
model storage of the trained ones.

* ``NluComponent``: ``required_components()`` and ``required_packages()`` read from the class
  attributes ``REQUIRES`` and ``PACKAGES``; ``create()`` builds the component from its config.
* ``SavedModelComponent``: a trained component whose model is a dict of numpy arrays, persisted in
  its model-storage resource as ``MODEL_FILE`` (``np.savez``, loaded with ``allow_pickle=False``)
  beside the JSON metadata ``META_FILE``: no pickle, nothing executable is ever loaded.
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar, Dict, List, Optional, Text, Tuple, Type

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Each row (last axis) scaled to unit length; a zero row stays zero."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class NluComponent(GraphComponent):
    """A graph component that declares its requirements as class attributes."""

    # components that must come before this one in the pipeline
    REQUIRES: ClassVar[List[Type]] = []
    # python packages the component needs beyond Rasa's own
    PACKAGES: ClassVar[List[Text]] = []

    @classmethod
    def required_components(cls) -> List[Type]:
        """Components that should be included in the pipeline before this component."""
        return list(cls.REQUIRES)

    @classmethod
    def required_packages(cls) -> List[Text]:
        """Extra python dependencies."""
        return list(cls.PACKAGES)

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> GraphComponent:
        """Creates a new (untrained) component (see parent class for full docstring)."""
        return cls.new(config, model_storage, resource)

    @classmethod
    def new(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource) -> GraphComponent:
        """A new instance: built from the config alone."""
        return cls(config)


class SavedModelComponent(NluComponent):
    """A component trained into numpy arrays (``self.model``, None while untrained)."""

    MODEL_FILE: ClassVar[Text]
    META_FILE: ClassVar[Text]

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        model: Optional[Dict[Text, np.ndarray]] = None,
    ) -> None:
        """Creates the component (trained when ``model`` is given)."""
        self.component_config = config
        self._model_storage = model_storage
        self._resource = resource
        self.model = model

    @classmethod
    def new(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource) -> GraphComponent:
        """A new untrained instance that persists into ``resource`` once trained."""
        return cls(config, model_storage, resource)

    def metadata(self) -> Dict[Text, Any]:
        """What is written beside the arrays (JSON)."""
        return {}

    @classmethod
    def restored(cls, config: Dict[Text, Any], meta: Dict[Text, Any]) -> Tuple[Dict[Text, Any], Dict[Text, Any]]:
        """The config and the further constructor arguments of a loaded model, from its metadata
        (a KeyError: the model cannot be used)."""
        return config, {}

    def persist(self) -> None:
        """Writes numpy arrays + JSON metadata into the model storage resource."""
        if self.model is None:
            return
        with self._model_storage.write_to(self._resource) as directory:
            np.savez(directory / self.MODEL_FILE, **self.model)
            (directory / self.META_FILE).write_text(json.dumps(self.metadata(), ensure_ascii=False))

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> GraphComponent:
        """Loads the trained component, or an untrained one when the resource holds no model (see
        parent class for full docstring)."""
        try:
            with model_storage.read_from(resource) as directory:
                meta_path = directory / cls.META_FILE
                meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
                with np.load(directory / cls.MODEL_FILE, allow_pickle=False) as data:
                    model = {k: data[k] for k in data.files}
            saved_config, extra = cls.restored(config, meta)
            return cls(saved_config, model_storage, resource, model, **extra)
        except (ValueError, FileNotFoundError, KeyError) as e:
            logging.getLogger(cls.__module__).debug(f"{cls.__name__}: no trained model in '{resource.name}' ({e}).")
            return cls(config, model_storage, resource)
