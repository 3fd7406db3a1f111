"""The filter registry and the engines: every filter everywhere, each engine as it declares."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import structured_image
from scipy import ndimage

from xray_scale.engines import Engine, get_engine
from xray_scale.engines.registry import ENGINES, engine_filters, engine_masks
from xray_scale.errors import EngineError
from xray_scale.filters import FILTERS, HOST_ONLY, MASKS, FilterSpec, sobel

DECLARED = {
    "scipy": (set(FILTERS), set(MASKS)),
    "opencv": (
        {"laplace_gaussian", "gaussian_gradient_magnitude", "sobel", "tutorial_canny"},
        {"mask_values"},
    ),
    "cupy": (
        {"laplace_gaussian", "gaussian_gradient_magnitude", "sobel", "tutorial_canny", "canny"},
        set(),
    ),
}
"""What each engine implements itself, per image: a filter dropped or misspelt fails here."""

CONCRETE = [engine for engine in ENGINES if engine != "auto"]


def engine_here(name: str) -> Engine:
    try:
        return get_engine(name)
    except EngineError as error:
        pytest.skip(f"the {name} engine cannot run here: {error}")


def test_every_concrete_engine_has_a_declaration_here():
    assert set(DECLARED) == set(CONCRETE)


def test_every_registered_filter_has_a_stack_version_or_is_host_only():
    for name, spec in FILTERS.items():
        assert spec.stack is HOST_ONLY or callable(spec.stack), name
    assert [name for name, spec in FILTERS.items() if spec.stack is HOST_ONLY] == ["canny"]


def test_a_filter_without_a_stack_version_or_the_marker_is_refused():
    with pytest.raises(TypeError, match="needs a stack version"):
        FilterSpec("sobel_again", sobel)


def test_every_filter_has_a_title_for_figures():
    assert all(spec.title for spec in FILTERS.values())


@pytest.mark.parametrize("engine", CONCRETE)
def test_each_engine_implements_exactly_what_it_declares(engine):
    declared_filters, declared_masks = DECLARED[engine]
    found = engine_here(engine)
    assert found.name == engine
    assert set(found.filters) == declared_filters
    assert set(found.masks) == declared_masks
    functions, masks = engine_filters(engine), engine_masks(engine)
    assert set(functions) == set(FILTERS) and set(masks) == set(MASKS)
    for name, spec in FILTERS.items():  # its own where declared, else the reference
        assert functions[name] is found.filters.get(name, spec.function), name
    for name, reference in MASKS.items():
        assert masks[name] is found.masks.get(name, reference), name


@pytest.mark.parametrize("engine", CONCRETE)
def test_every_registered_filter_and_mask_runs_on_every_engine_present(engine):
    engine_here(engine)
    image = structured_image(5, shape=(80, 96))
    reference = {name: spec.function for name, spec in FILTERS.items()}
    for name, spec in FILTERS.items():
        expected = reference[name](image, **spec.defaults())
        result = engine_filters(engine)[name](image, **spec.defaults())
        assert result.shape == expected.shape and result.dtype == expected.dtype, name
        if spec.output_dtype == "float32":
            assert np.abs(result - expected).max() <= 1e-4 * max(np.ptp(expected), 1e-30), name
        else:  # an edge map: a GPU's own Canny may differ in a few pixels
            assert (result == expected).mean() >= 0.99, name
    for name, mask in MASKS.items():
        assert np.array_equal(engine_masks(engine)[name](image, 150.0), mask(image, 150.0)), name


@pytest.mark.parametrize("name", [n for n, s in FILTERS.items() if s.stack is not HOST_ONLY])
def test_every_stack_version_filters_each_image_on_its_own(name):
    spec = FILTERS[name]
    stack = np.stack([structured_image(k, shape=(40, 48)) for k in range(3)]).astype(np.float32)
    result = spec.stack(stack, xp=np, ndimage=ndimage, **spec.defaults())
    for k, image in enumerate(stack):
        expected = spec.function(image, **spec.defaults())
        assert np.abs(result[k] - expected).max() <= 1e-4 * max(np.ptp(expected), 1e-30), k


def test_an_engine_registering_a_name_the_registry_lacks_is_refused():
    with pytest.raises(EngineError, match="registers sobell, which the registry does not have"):
        Engine(name="typo", filters={"sobell": sobel})
    with pytest.raises(EngineError, match="mask_value"):
        Engine(name="typo", filters={}, masks={"mask_value": MASKS["mask_values"]})


def test_the_cpu_engines_analyse_image_by_image_in_any_worker():
    for name in ("scipy", "opencv"):
        engine = engine_here(name)
        assert not engine.analyses_batches and engine.processes
        assert engine.backend is None


def test_the_gpu_engine_declares_batches_and_no_worker_processes():
    engine = engine_here("cupy")
    assert engine.analyses_batches and not engine.processes
    assert engine.backend is not None and engine.backend.name == "cupy"
