"""The small public API resolves to the documented objects, never to a subpackage by accident."""

from __future__ import annotations

import inspect
import types

import cellblock


def test_every_export_resolves_to_a_class_or_function() -> None:
    # importing the subpackages must not shadow any export
    import cellblock.assess
    import cellblock.audit
    import cellblock.pipeline
    import cellblock.policy
    import cellblock.sandbox

    for name in cellblock.__all__:
        value = getattr(cellblock, name)
        if name == "__version__":
            assert isinstance(value, str)
            continue
        assert not isinstance(value, types.ModuleType), name
        assert inspect.isclass(value) or callable(value), name


def test_execute_is_the_pipeline() -> None:
    from cellblock.pipeline import execute

    assert cellblock.execute is execute
