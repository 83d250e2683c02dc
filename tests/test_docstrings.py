"""The public API's docstrings: present, numpydoc parameters that match the signatures, and
examples that run."""

import ast
import dataclasses
import doctest
import functools
import importlib
import inspect
import pkgutil

import numpy
import pytest
import torch
from numpydoc import docscrape
from numpydoc import validate as numpydoc_validate

import brainjepa_sk

# skorch's own NeuralNet parameters, which the fine-tuners document as skorch's **kwargs
_SKORCH_PARAMETERS = {
    "callbacks", "classes", "compile", "dataset", "iterator_train", "iterator_valid",
    "predict_nonlinearity", "torch_load_kwargs", "use_caching", "warm_start",
}


def _modules(public_only=True):
    for info in pkgutil.walk_packages(brainjepa_sk.__path__, "brainjepa_sk."):
        if not (public_only and any(part.startswith("_") for part in info.name.split("."))):
            yield importlib.import_module(info.name)


def _public_names(module):
    """A module's ``__all__``, then the other public functions and classes it defines (importable
    from a public module, so public too, though not listed)."""
    listed = list(getattr(module, "__all__", ()))
    defined = [name for name, obj in vars(module).items()
               if not name.startswith("_") and name not in listed
               and (inspect.isfunction(obj) or inspect.isclass(obj))
               and obj.__module__ == module.__name__]
    return listed + defined


def _public_objects():
    """(dotted name, object) of every public name of a public module (see ``_public_names``) and
    of the public methods, class and static methods and properties that its classes define,
    each object once."""
    seen = set()
    for module in [brainjepa_sk, *_modules()]:
        for name in _public_names(module):
            obj = getattr(module, name)
            if inspect.ismodule(obj) or id(obj) in seen:
                continue
            seen.add(id(obj))
            yield f"{module.__name__}.{name}", obj
            if inspect.isclass(obj):
                for attribute, member in vars(obj).items():
                    if attribute.startswith("_") or id(member) in seen:
                        continue
                    # a classmethod object is not callable: reached through the class
                    if isinstance(member, (classmethod, staticmethod)):
                        seen.add(id(member))
                        yield f"{module.__name__}.{name}.{attribute}", getattr(obj, attribute)
                    elif callable(member) or isinstance(member, property):
                        seen.add(id(member))
                        yield f"{module.__name__}.{name}.{attribute}", member


PUBLIC = dict(_public_objects())


def _documented(obj, section):
    """Names in a numpydoc section; ``a, b, c`` documents three, ``**kwargs`` none."""
    entries = docscrape.ClassDoc(obj) if inspect.isclass(obj) else docscrape.FunctionDoc(obj)
    return {name.strip() for entry in entries[section] for name in entry.name.split(",")
            if not name.strip().startswith("*")}


def test_the_public_api_is_found():
    names = set(PUBLIC)
    assert len(names) > 150
    assert {"brainjepa_sk.BrainJEPAEmbedder", "brainjepa_sk.BrainJEPAEmbedder.fit",
            "brainjepa_sk.nn.BrainJEPA", "brainjepa_sk.train.PretrainLoop"} <= names


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_docstring_and_parameters(name):
    errors = {code: message for code, message in numpydoc_validate.validate(name)["errors"]}
    assert "GL08" not in errors, f"{name} has no docstring"
    obj = PUBLIC[name]
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
        # one entry a field, as Parameters or as Attributes
        fields = {field.name for field in dataclasses.fields(obj)}
        assert _documented(obj, "Parameters") | _documented(obj, "Attributes") == fields
    elif inspect.isclass(obj) and "get_params_for" in dir(obj):
        # the fine-tuners take skorch's parameters through **kwargs: every parameter of
        # ours is documented, and nothing documented is unknown
        ours = set(obj().get_params(deep=False)) - _SKORCH_PARAMETERS
        documented = _documented(obj, "Parameters")
        assert ours - documented == set(), "undocumented"
        assert documented - ours == set(), "documented but not a parameter"
    else:
        # parameters not documented / documented, not there; a Returns section missing / a
        # returned value with a type and no description
        for code in ("PR01", "PR02", "RT01", "RT03"):
            assert code not in errors, errors[code]


# the public functions defined in private modules too (doctest finds an object in the module
# that defines it)
@pytest.mark.parametrize("module", sorted(m.__name__ for m in _modules(public_only=False)))
def test_docstring_examples_run(module):
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(importlib.import_module(module)):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_the_examples_are_found():
    finder = doctest.DocTestFinder(exclude_empty=True)
    examples = sum(len(test.examples) for module in _modules(public_only=False)
                   for test in finder.find(module))
    assert examples >= 15


def _signature_defaults(obj):
    """Each parameter's default in the signature of a function, or of a class's constructors
    (the fine-tuning estimators pass most parameters on to their base class)."""
    if not inspect.isclass(obj):
        return {key: parameter.default
                for key, parameter in inspect.signature(obj).parameters.items()}
    defaults = {}
    for klass in reversed(obj.__mro__):
        if "__init__" in vars(klass) and klass is not object:
            defaults.update((key, parameter.default) for key, parameter
                            in inspect.signature(klass.__init__).parameters.items())
    return defaults


def _documented_value(text):
    """The value a docstring's ``default=`` text names: a literal, or a dotted name in torch or
    NumPy (``torch.optim.AdamW``, ``numpy.float64``)."""
    root, *attributes = text.split(".")
    if root in ("torch", "numpy") and attributes:
        return functools.reduce(getattr, attributes, {"torch": torch, "numpy": numpy}[root])
    return ast.literal_eval(text)


def _default_mismatches(obj):
    """``(parameter, documented, actual)`` for each documented default that the signature does
    not have, and the number of parameters checked. ``lr, start_lr : float, default=1e-3, 5e-5``
    documents one a name; a parameter documented as ``optional`` without a default must default
    to None."""
    doc = docscrape.ClassDoc(obj) if inspect.isclass(obj) else docscrape.FunctionDoc(obj)
    actual = _signature_defaults(obj)
    mismatches, checked = [], 0
    for entry in doc["Parameters"]:
        names = [n.strip() for n in entry.name.split(",") if not n.strip().startswith("*")]
        if "default=" in entry.type:
            text = entry.type.split("default=", 1)[1]
            texts = [text] if len(names) == 1 else text.split(", ")
            assert len(texts) == len(names), f"{entry.name}: {entry.type}"
            documented = [_documented_value(t) for t in texts]
        elif entry.type.endswith("optional"):
            documented = [None] * len(names)
        else:
            continue
        for parameter, value in zip(names, documented):
            default = actual.get(parameter, inspect.Parameter.empty)
            # 1 is not True, but 0 may document 0.0
            same = default is value or (default == value and (
                type(default) is type(value) or isinstance(default, float)))
            if default is inspect.Parameter.empty or not same:
                mismatches.append((parameter, value, default))
            checked += 1
    return mismatches, checked


@pytest.mark.parametrize("name", ["BrainJEPAEmbedder", "BrainJEPAPretrainer", "GradientPositioner",
                                  "BrainJEPAClassifier", "BrainJEPARegressor",
                                  "preprocessing.Preprocessor"])
def test_the_documented_defaults_are_the_constructors(name):
    """Every default in an estimator's Parameters section is the value its constructor takes: a
    default changed in one place only would mislead."""
    mismatches, checked = _default_mismatches(
        functools.reduce(getattr, name.split("."), brainjepa_sk))
    assert mismatches == []
    assert checked >= 5


def test_the_documented_defaults_are_the_signatures():
    """The same for every public class, function and method."""
    mismatches, checked = {}, 0
    for name, obj in PUBLIC.items():
        if not callable(obj):  # properties, constants
            continue
        wrong, count = _default_mismatches(obj)
        mismatches.update({f"{name}({parameter})": (documented, default)
                           for parameter, documented, default in wrong})
        checked += count
    assert mismatches == {}
    assert checked > 200


def _fitted_attributes(estimator):
    """The public attributes ending in ``_`` that ``estimator`` has."""
    return {name for name in vars(estimator) if name.endswith("_") and not name.startswith("_")}


def test_the_fitted_attributes_are_documented():
    """Every public attribute a fit sets is in the estimator's Attributes section (the skorch
    nets' own, those a plain skorch net of the same kind has after its fit, are skorch's to
    document)."""
    from _estimators import make_subjects, tiny_estimators, tiny_supervised_estimators
    from sklearn.base import is_classifier
    from skorch import NeuralNet

    X = make_subjects()
    y = numpy.array([0, 1] * (len(X) // 2))
    undocumented = {}
    for estimator in [*tiny_estimators(), *tiny_supervised_estimators()]:
        kind = type(estimator)
        if isinstance(estimator, NeuralNet):
            classifier = is_classifier(estimator)
            estimator.fit(X, y if classifier else y.astype(numpy.float64))
            skorch_kind = next(k for k in kind.__mro__ if k.__module__.startswith("skorch."))
            plain = skorch_kind(torch.nn.Linear, module__in_features=2, module__out_features=2,
                                max_epochs=1, train_split=None, verbose=0)
            rows = numpy.zeros((4, 2), dtype=numpy.float32)
            plain.fit(rows, numpy.array([0, 1, 0, 1]) if classifier else rows)
            own = _fitted_attributes(estimator) - _fitted_attributes(plain)
        else:
            own = _fitted_attributes(estimator.fit(X))
        assert own, kind.__name__  # found at all
        missing = own - _documented(kind, "Attributes")
        if missing:
            undocumented[kind.__name__] = sorted(missing)
    assert undocumented == {}
