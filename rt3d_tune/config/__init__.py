"""Configs: the files a user brings, read the way mmcv and mmengine read them.

``config`` (:class:`Config`: .py/.yaml/.json, ``_base_``, ``_delete_``,
``custom_imports``, ``{{ }}`` references, dotted overrides, dump), ``config_dict``
(attribute access), ``custom_imports``, ``options`` (``--cfg-options``), ``text`` (the
file text: base variables, references), ``yaml_io`` (the project's one YAML reader),
``keypaths`` (dotted key paths and the runtime keys), ``limits`` (every bound on what a
user's file may hold), ``paths`` (run names and output folders). Imports nothing of the
package but :mod:`rt3d_tune.errors`.
"""

from rt3d_tune.config.config import Config

__all__ = ["Config"]
