"""skorch's parameters and callbacks as the fine-tuners take them (:class:`SkorchParamsMixin`).

:class:`~brainjepa_sk.BrainJEPAClassifier` and :class:`~brainjepa_sk.BrainJEPARegressor` are
skorch nets whose parameters scikit-learn reads and sets (``get_params``, ``set_params``,
``clone``, a grid search) and whose callbacks are set by name (``callbacks__<name>``,
``callbacks__<name>__<parameter>``). This module holds their overrides of skorch's parameter
and callback methods: the settings checked before they are kept, reported as they were given,
a refused call undone, the default callbacks (skorch's, then the learning-rate schedule), the
loaders' parameters, and the check of unknown constructor arguments that names the parameter
meant; also the constructor signature that scikit-learn reads their parameters from.

It is kept apart from :mod:`brainjepa_sk.finetune` so that the fine-tuners' module holds the
estimators and their fit and predict logic; the mixin is theirs alone.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import numbers

from skorch import NeuralNet, NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import Callback, LRScheduler, PrintLog

from ._base import check_parameters, restore_on_error
from ._skorch import WarmupCosineLR
from ._warnings import warn_user
from .nn._checks import type_with_article
from .train.data import ignore_sigterm, worker_context
from .validation import check_nested_params

#: No value (a parameter the net does not hold).
_MISSING = object()


@functools.cache
def _own_parameters():
    """The parameters of the fine-tuners and of skorch's nets (not those a subclass adds)."""
    # imported here: the fine-tuners' module imports this one
    from .finetune import BrainJEPAClassifier, BrainJEPARegressor, _FineTuneBase

    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return frozenset(
        name for cls in (_FineTuneBase, BrainJEPAClassifier, BrainJEPARegressor, NeuralNet,
                         NeuralNetClassifier, NeuralNetRegressor)
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and parameter.kind not in variadic)


def _registers_components(cls):
    """Whether ``cls`` (a fine-tuner's subclass) overrides one of skorch's ``initialize*``
    methods outside this package and skorch: skorch's way of adding a component registers it,
    and its ``<name>__`` prefix, only when the net is initialized."""
    return any(
        not next(klass for klass in cls.__mro__ if name in vars(klass)).__module__.startswith(
            ("brainjepa_sk.", "skorch."))
        for name in ("initialize", "initialize_module", "initialize_criterion",
                     "initialize_optimizer"))


def _is_callback(value):
    """Whether skorch can run ``value`` as a callback: a callback, or a callback class (built
    with its ``callbacks__<name>__*`` settings)."""
    if isinstance(value, type):
        return issubclass(value, Callback) or all(
            callable(getattr(value, method, None)) for method in ("initialize", "set_params"))
    return isinstance(value, Callback) or all(
        callable(getattr(value, method, None))
        for method in ("initialize", "get_params", "set_params"))


def _callback_parameters(callback):
    """The parameters that ``callback`` (a callback or its class) takes, or None when any name
    goes (a class taking ``**kwargs``, as skorch's ``LRScheduler``)."""
    if isinstance(callback, type):
        names = _named_arguments(callback)
        return None if names is None else dict.fromkeys(names, _MISSING)
    return callback.get_params(deep=False)


def _constructor_signature(cls):
    """The signature of ``cls.__init__`` with the keyword arguments it passes on to its bases
    spelled out, each with the default of the first class in the MRO that has one.

    The fine-tuners take most of their parameters (ours, then skorch's) through ``**kwargs``;
    scikit-learn tells the parameters set away from their defaults (in ``repr``, in the HTML
    repr of a notebook) by the constructor's signature, and would take every one of them as
    set. ``**kwargs`` stays: it takes skorch's prefixed parameters (``optimizer__betas``).
    """
    own = inspect.signature(vars(cls)["__init__"])
    keyword = inspect.Parameter.VAR_KEYWORD
    parameters = [p for p in own.parameters.values() if p.kind is not keyword]
    rest = [p for p in own.parameters.values() if p.kind is keyword]
    if not rest:  # passes nothing on
        return own
    names = {p.name for p in parameters}
    for klass in cls.__mro__[1:]:
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            # skorch's module has no default: it is built from the weights, not a parameter
            if (p.name in names or p.default is p.empty
                    or p.kind in (keyword, inspect.Parameter.VAR_POSITIONAL)):
                continue
            parameters.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY))
            names.add(p.name)
    return own.replace(parameters=[*parameters, *rest])


def _named_arguments(factory):
    """The names of the arguments ``factory`` (a class, a function, a partial) takes, in
    order (not a ``*args``); None where it takes any (``**kwargs``) or its signature cannot
    be read."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read
        return None
    if any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
        return None
    return [parameter.name for parameter in parameters
            if parameter.kind is not parameter.VAR_POSITIONAL]


class SkorchParamsMixin:
    """The fine-tuners' handling of skorch's parameters and callbacks (see the module's
    docstring).

    The fine-tuners' base class inherits it before skorch's net: its methods override
    skorch's and reach them through ``super()``. It uses what that base class defines
    (``_parameter_constraints``, ``_initialize_optimizer``).
    """

    def _get_param_names(self):
        # The module is built from weights, pooling and the head settings: not a parameter.
        # skorch's bookkeeping of its keyword arguments is not one either (its __init__
        # rebuilds it from the prefixed parameters that clone passes back).
        return [name for name in super()._get_param_names()
                if name not in ("module", "_params_to_validate")]

    def get_params(self, deep=True, **kwargs):
        """Get the parameters of this estimator, as skorch gives them.

        With ``deep=True`` a default callback's settings given as ``callbacks__<name>__*`` (or
        ``callbacks__<name>=None``) are reported as given: skorch read them from a fresh default
        callback, reporting ``callbacks__print_log__floatfmt='.4f'`` after
        ``set_params(callbacks__print_log__floatfmt='.2g')``, before and after ``fit``; the
        defaults are this estimator's (``print_log`` showing ``'10.4g'``, ``lr_schedule``), also
        before ``fit``. A callback given in a default one's place reports its own settings
        (skorch's were the default's), so that ``set_params(**get_params())`` keeps them, a
        callback class the settings given to it (it is built with them), and one disabled
        (``callbacks__<name>=None``) reports none. With ``callbacks="disable"`` no callback, nor
        setting, is reported but those given to the net (by the constructor or ``set_params``, kept
        for when the callbacks run again).

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of sub-objects (the callbacks', the split's).
        **kwargs : dict
            Passed to skorch's ``get_params``.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        params = super().get_params(deep=deep, **kwargs)
        if not deep:
            return params
        given = {key: value for key, value in vars(self).items()
                 if key.startswith("callbacks__") and key in params}
        for key, callback in given.items():
            if key.count("__") != 1:
                continue
            # a callback given in a default one's place: its own settings, not the default's;
            # one disabled (None) has none (skorch reported the default's, which set_params
            # then refused for a callback that does not exist); a class, built at initialize
            # with the settings given to it, those alone (the default's were given to it)
            params = {name: value for name, value in params.items()
                      if not name.startswith(key + "__")}
            if isinstance(callback, type):
                params.update({name: value for name, value in given.items()
                               if name.startswith(key + "__")})
            elif callable(getattr(callback, "get_params", None)):  # fit refuses another
                params.update({f"{key}__{name}": value
                               for name, value in callback.get_params().items()})
        params.update({key: value for key, value in given.items() if key in params})
        if isinstance(self.callbacks, str):
            # "disable": no callback runs, so none is reported, nor its settings, but those
            # the net holds for when they run again (skorch reported the default callbacks',
            # and its set_params failed for them with "not enough values to unpack")
            params = {key: value for key, value in params.items()
                      if not key.startswith("callbacks__") or key in vars(self)}
        return params

    def set_params(self, **params):
        """Set parameters, as skorch does (prefixed ones included), except the module's.

        On a fitted net, another ``optimizer`` class builds the new optimizer at once (over
        the layer-wise groups, without the old one's moments), ``criterion__*`` settings
        rebuild the loss and keep the optimizer and its moments (skorch would build a new
        one: the optimizer trains the model alone), ``compile`` and
        ``compile__*`` compile the fine-tuned module anew (skorch would rebuild it from
        ``weights``), and ``iterator_train__*``, ``iterator_valid__*`` and ``dataset__*`` are
        kept for the next fit (which refuses ``dataset__*``: the fine-tuners make their own
        dataset of windows). ``train_split__*`` set the split's parameters (a
        ``SubjectValidSplit``'s ``fraction``, ``stratified`` and ``random_state``), as a
        grid search over ``train_split__fraction`` does. ``callbacks__<name>=None`` turns a
        callback off (with the settings given to it before), and
        ``callbacks__<name>=<callback>`` puts one in its place (one turned off before too), the
        settings given to the one it replaces going with it; a new ``callbacks`` list drops
        the ``callbacks__*`` settings of the callbacks it no longer holds. While
        ``callbacks="disable"`` turns every callback off, ``callbacks__*`` settings and
        callbacks given by name are kept, as the constructor keeps them, and apply once
        ``callbacks=None`` (or a list) turns them on again. A call that raises undoes the
        settings it made (a refused ``callbacks`` list is not kept). ``fit`` refuses the
        settings refused here that were given to the constructor.

        Parameters
        ----------
        **params : dict
            Parameters and their values (``lr``, ``optimizer__betas``, ``callbacks__...``,
            ``train_split__fraction``).

        Returns
        -------
        self
            The estimator.

        Raises
        ------
        ValueError
            For ``module`` and ``module__*``: the module is built from ``weights`` and the
            head settings. For a ``train_split__*`` that ``train_split`` does not have. For
            ``<parameter>__*`` of one of the estimator's own parameters that holds no
            estimator (``weights__*``, ``pooling__*``, ...; skorch's prefixes, and those of
            the parameters a subclass adds, a component of its, are skorch's), and
            ``gradients__*``: ``gradients`` is a gradient matrix or its file, which has no
            parameters (a :class:`~brainjepa_sk.gradients.GradientPositioner` is
            :class:`~brainjepa_sk.BrainJEPAPretrainer`'s ``gradients``). For a
            ``<prefix>__*`` of a prefix that is neither a parameter nor skorch's, as
            scikit-learn's ``set_params`` refuses a parameter there is not ("Invalid
            parameter ..."); skorch would have kept it for ``fit`` to refuse. (A subclass
            that overrides skorch's ``initialize*`` methods registers its components there:
            until the net is initialized, its unknown prefixes are left to ``fit``.)
            For a ``callbacks__<name>`` or ``callbacks__<name>__<parameter>`` of a name that
            no callback has (while ``callbacks="disable"``, the names of the default
            callbacks), and a ``callbacks__<name>__<parameter>`` of a callback turned off
            (``callbacks__<name>=None``). For a
            ``callbacks__<name>`` that is neither a callback, its class nor None, a
            ``callbacks__<name>__<parameter>`` of a parameter the callback has not, and a
            ``callbacks__<name>__<parameter>__<setting>`` of a parameter holding no estimator
            (the settings given with them are not kept); the same settings given to the
            constructor are refused by ``fit``. On a fitted net, for a ``compile`` that is
            not True, False or ``"auto"`` (it compiles the module at once). For a
            ``criterion`` (or ``criterion__*``) that makes a loss with parameters to train.
        TypeError
            When the new ``optimizer`` class refuses one of the ``optimizer__*`` settings
            (the net is then left as it was).
        """
        self._refuse_module_settings(params)
        # the prefixes skorch routes (module, criterion and optimizer become its prefixes at
        # initialize), and train_split's, routed below
        self._check_nested_params(params)
        initialized = getattr(self, "initialized_", False)
        # skorch would store train_split__fraction as an attribute of the net, and refuse it at
        # the next fit: they are the split's, as a Pipeline's step__param are the step's
        split_params = {key[len("train_split__"):]: params.pop(key) for key in list(params)
                        if key.startswith("train_split__")}
        # on a fitted net, skorch's set_params fails ("Something went wrong, please open an
        # issue") when its only prefixed settings are of the optimizer class, the loaders or
        # the dataset, and rebuilds the module from weights for compile settings (the
        # fine-tuning lost): those are set here
        own = {key: params.pop(key) for key in list(params)
               if initialized and self._set_outside_skorch(key)}
        # skorch initializes the new callbacks list before it sets callbacks__lr_schedule=None
        # given with it: the overridden-scheduler warning waits for both
        self.__dict__["_setting_params_"] = True
        try:
            self._set_params(params, initialized, split_params, own)
        finally:
            self.__dict__.pop("_setting_params_", None)
        if any(key == "callbacks" or key.startswith("callbacks__") for key in params):
            self._warn_scheduler_overridden()
        return self

    def _set_params(self, params, initialized, split_params, own):
        """The settings of :meth:`set_params`, sorted by it."""
        # a failure leaves the net as it was: the settings given with those (max_epochs, lr,
        # ...) are undone too, and a refused callbacks list is not kept
        with restore_on_error(self), self._optimizer_groups_restored_on_error():
            # skorch adds the prefixed names to this set in place: a copy, restored on error
            self._params_to_validate = set(self._params_to_validate)
            if "callbacks" in params:
                # skorch initializes the callbacks it has before it stores the new ones: once
                # a list it refuses (names repeated, say) was stored, every later list was
                # refused for it
                self.callbacks = params["callbacks"]
                self._check_callbacks()
                self._drop_settings_of_callbacks_gone()
                if isinstance(self.callbacks, str) and self.callbacks == "disable":
                    # skorch would then find no callbacks to set, and fail
                    del params["callbacks"]
                    self._initialize_callbacks()
            by_name = {key: value for key, value in params.items()
                       if key.startswith("callbacks__") and "__" not in key[len("callbacks__"):]}
            self._set_callbacks_by_name(by_name, params)
            # callbacks__<name>__<parameter>__<setting>, of an estimator a callback holds:
            # skorch's set_params failed for them ("too many values to unpack"); and with
            # callbacks="disable" every callbacks__<name>__<parameter>: skorch found no
            # callback to give it to ("not enough values to unpack"). Kept as the
            # constructor's are, for the callbacks built again below (or once turned on)
            disabled = isinstance(self.callbacks, str)
            nested = {key: value for key, value in params.items()
                      if key.startswith("callbacks__") and key not in by_name
                      and (disabled or key.count("__") > 2)}
            if nested:
                vars(self).update(nested)
                self._params_to_validate |= set(nested)
            # skorch's own rebuilds (the criterion's, and the optimizer's after it) are told
            # apart from the optimizer class set below, which builds a new optimizer
            self.__dict__["_in_skorch_set_params_"] = True
            try:
                super().set_params(**{key: value for key, value in params.items()
                                      if key not in by_name and key not in nested})
            finally:
                self.__dict__.pop("_in_skorch_set_params_")
            replaced = any(key.startswith("callbacks__")
                           and "__" not in key[len("callbacks__"):] for key in params)
            if ("callbacks" in params and initialized) or replaced or nested:
                # skorch rebuilds callbacks_ before it stores the new list: the new callbacks
                # would be missing from a continued fit (warm_start, partial_fit); and it puts
                # a callback set by name (callbacks__lr_schedule=None) into callbacks_ as
                # given, None or not initialized, which the next fit would call (one it cannot
                # initialize, callbacks__print_log=False say, is refused here, not kept)
                self._initialize_callbacks()
            if own:
                for key, value in own.items():
                    setattr(self, key, value)
                # before they are used: compile="no" had compiled the module at once
                check_parameters(self, names=[key for key in own
                                              if key in self._parameter_constraints])
                # a new set (restored on error), for skorch's check of the prefixed names
                self._params_to_validate = self._params_to_validate | {
                    key for key in own if "__" in key}
                self._validate_params()
                if any(key.split("__", 1)[0] == "compile" for key in own):
                    self._compile_trained_modules()
                optimizers = {key: own[key] for key in own if key in self._optimizers}
                if optimizers:
                    # a continued fit trains with the optimizer it is given (from a fresh state)
                    self._initialize_optimizer(reason=self._format_reinit_msg(
                        "optimizer", optimizers, triggered_directly=True))
            if split_params:  # last: the split is changed in place, which nothing would undo
                if not hasattr(self.train_split, "set_params"):
                    raise ValueError(
                        f"{', '.join('train_split__' + key for key in split_params)}: "
                        f"train_split={self.train_split!r} has no parameters to set; pass "
                        "train_split=brainjepa_sk.finetune.SubjectValidSplit(...), whose "
                        "fraction, stratified and random_state are")
                self.train_split.set_params(**split_params)
        return self

    def _compile_trained_modules(self):
        """Compile the trained module and criterion anew (or not) as ``compile`` says on the
        net's device."""
        for name in ("module", "criterion"):
            current = getattr(self, f"{name}_")
            setattr(self, f"{name}_", self.torch_compile(getattr(current, "_orig_mod", current),
                                                         name=name))

    @contextlib.contextmanager
    def _optimizer_groups_restored_on_error(self):
        """Put back the live optimizer's group settings if the block raises: skorch's setters
        of ``lr`` and ``optimizer__*`` write them in place."""
        optimizer = self.__dict__.get("optimizer_")
        groups = [] if optimizer is None else optimizer.param_groups
        saved = [dict(group) for group in groups]
        try:
            yield
        except BaseException:
            for group, settings in zip(groups, saved):
                group.clear()
                group.update(settings)
            raise

    def _set_callbacks_by_name(self, by_name, params):
        """Set the callbacks given by name (``callbacks__<name>``) for ``set_params``.

        skorch replaced only the callbacks in ``callbacks_``: one disabled before
        (``callbacks__<name>=None``), or all of them (``callbacks="disable"``), could not be
        given again ("not enough values to unpack"), and a name that no callback has failed so
        too. They are set here (the callbacks are built again after), once
        :meth:`_check_callback_settings` has checked the call's ``callbacks__*`` settings; a
        callback disabled (``callbacks__<name>=None``) or replaced by another drops the
        settings earlier calls gave the one it held (the call's own settings are the new
        one's).
        """
        self._check_callback_settings(params)
        if by_name:
            # skorch kept them: for a callback disabled, it refused them ("Trying to set a
            # parameter for callback print_log which does not exist"), and it gave them to
            # one put in its place (EarlyStopping.__init__'s bare TypeError for floatfmt)
            self._drop_callback_settings([
                key for key in vars(self) for name, callback in by_name.items()
                if key.startswith(name + "__")
                and (callback is None or callback is not vars(self).get(name, _MISSING))])
            vars(self).update(by_name)
            # a new set (restored on error), as skorch records the prefixed names it was given
            self._params_to_validate = self._params_to_validate | set(by_name)

    def _check_callback_settings(self, params):
        """Refuse the ``callbacks__<name>`` and ``callbacks__<name>__<parameter>`` in
        ``params`` that no callback takes.

        Refused: a name no callback has (skorch ignored one given to the constructor, a
        misspelt ``callbacks__printlog=None`` say, and ``set_params`` failed for it with "not
        enough values to unpack"), and a setting of a callback disabled by name
        (``callbacks__<name>=None``, in ``params`` or before). While ``callbacks="disable"``
        turns every callback off, the names are those of the default callbacks (which
        ``callbacks=None``, or a list, turns on again), and the settings and callbacks given
        by name are kept for then, by ``set_params`` as by the constructor.
        """
        keys = [key for key in params if key.startswith("callbacks__")]
        if not keys:
            return
        self._check_callbacks()
        names = self._callback_names()
        unknown = sorted(key for key in keys
                         if key[len("callbacks__"):].split("__", 1)[0] not in names)
        if unknown:
            name = unknown[0][len("callbacks__"):].split("__", 1)[0]
            raise ValueError(
                f"{unknown[0]}: {type(self).__name__} has no callback named {name!r}; its "
                f"callbacks are {', '.join(names)} (callbacks__<name>=None disables one, "
                "callbacks__<name>=<callback> replaces it)")
        for key in keys:
            name, _, setting = key[len("callbacks__"):].partition("__")
            if not setting:
                continue
            if params.get(f"callbacks__{name}", vars(self).get(f"callbacks__{name}", "")) is None:
                raise ValueError(
                    f"{key} sets a parameter of the callback {name!r}, which "
                    f"callbacks__{name}=None disabled: give callbacks__{name}=<a callback> "
                    "(in the same call) to use one again")
        for key in sorted(keys):
            name, _, setting = key[len("callbacks__"):].partition("__")
            if setting:
                self._check_callback_setting(key, params)
            elif params[key] is not None and not _is_callback(params[key]):
                # skorch failed at initialize: "'int' object has no attribute 'set_params'"
                raise ValueError(
                    f"{key}={params[key]!r} is not a callback: give a skorch callback (an "
                    f"instance, or its class) to put in the place of {name!r}, or "
                    f"{key}=None to turn it off")

    def _check_callback_setting(self, key, params):
        """Refuse a ``callbacks__<name>__<parameter>`` in ``params`` that the callback does not
        take: a parameter it has not (skorch left scikit-learn's "Invalid parameter 'foo' for
        estimator <PrintLog object at 0x...>", not naming the setting), or a setting of a
        parameter of it that holds no estimator (``callbacks__print_log__sink__x``:
        "'builtin_function_or_method' object has no attribute 'set_params'")."""
        name, _, setting = key[len("callbacks__"):].partition("__")
        parameter, _, nested = setting.partition("__")
        callback = params.get(f"callbacks__{name}", vars(self).get(f"callbacks__{name}",
                                                                   _MISSING))
        if callback is _MISSING:
            callback = dict(self._named_callbacks())[name]
        if callback is None or not _is_callback(callback):
            return  # refused for itself
        known = _callback_parameters(callback)
        if known is None:
            return
        what = callback.__name__ if isinstance(callback, type) else type(callback).__name__
        if parameter not in known:
            raise ValueError(
                f"{key}: the callback {name!r} ({what}) has no parameter {parameter!r}; its "
                f"parameters are {', '.join(sorted(known)) or 'none'}")
        # the value the parameter is given (in this call, or before), else the callback's
        given = f"callbacks__{name}__{parameter}"
        held = params.get(given, vars(self).get(given, known[parameter]))
        if nested and held is not _MISSING and not callable(getattr(held, "set_params", None)):
            raise ValueError(
                f"{key} sets the parameter {nested.partition('__')[0]!r} of the {parameter} "
                f"of the callback {name!r} ({what}), but that {parameter} is "
                f"{type_with_article(held)}, which has no parameters: set "
                f"callbacks__{name}__{parameter} itself")

    def _drop_settings_of_callbacks_gone(self):
        """Forget the ``callbacks__*`` settings of callbacks that a new ``callbacks`` no longer
        has (as a Pipeline's step parameters go with a replaced step): ``fit`` refuses settings
        of a name no callback has, which no ``set_params`` could have taken back."""
        names = set(self._callback_names())
        self._drop_callback_settings([
            key for key in vars(self) if key.startswith("callbacks__")
            and key[len("callbacks__"):].split("__", 1)[0] not in names])

    def _drop_callback_settings(self, keys):
        """Forget the ``callbacks__*`` settings ``keys`` of callbacks gone or disabled, as a
        Pipeline's step parameters go with a replaced step."""
        gone = set(keys)
        for key in gone:
            del vars(self)[key]
        if gone:
            # a new set (restored on error), as for the names set_params records
            self._params_to_validate = self._params_to_validate - gone

    def _callback_names(self):
        """The names of the default and given callbacks, as skorch names them."""
        return [name for name, _ in self._named_callbacks()]

    def _named_callbacks(self):
        """The ``(name, callback)`` pairs of the default and given callbacks, as skorch names
        them (before any ``callbacks__<name>`` replaces one)."""
        callbacks = self.callbacks
        if isinstance(callbacks, str):  # "disable": a default one may still be set by name
            self.__dict__["callbacks"] = None
        try:
            return list(self._uniquely_named_callbacks())
        finally:
            self.__dict__["callbacks"] = callbacks

    def _set_outside_skorch(self, key):
        """Whether ``set_params`` on a fitted net sets ``key`` itself (see ``set_params``)."""
        component = key.split("__", 1)[0]
        return not self._is_virtual_param(key) and (
            key in self._optimizers
            or component in ("iterator_train", "iterator_valid", "dataset", "compile"))

    def _check_nested_params(self, params, unknown_prefixes=True):
        """Refuse ``<parameter>__<name>`` settings of a parameter holding no estimator (see
        :func:`~brainjepa_sk.validation.check_nested_params`), in ``set_params`` and, for
        the constructor's, in ``fit``; with ``unknown_prefixes`` (``set_params``) also those
        of a prefix that is neither a parameter nor skorch's (``fit`` leaves the constructor's
        to :meth:`_validate_params`, which names the parameter meant)."""
        # the prefixes skorch routes (module, criterion and optimizer become its prefixes at
        # initialize), train_split's, routed by set_params, and a subclass's parameters:
        # skorch registers a component of its (a module class) only at initialize, and a grid
        # sets its settings on an unfitted clone
        own = _own_parameters()
        current = self.get_params(deep=False)
        prefixes = {key.partition("__")[0] for key in params if "__" in key}
        if unknown_prefixes and (self.initialized_
                                 or not _registers_components(type(self))):
            # a subclass's component, and a prefix given to the constructor (a component that
            # a subclass registers at initialize without a parameter of its own, whose
            # settings a grid sets again on an unfitted clone); a subclass that registers
            # components of its own at initialize has its prefixes known only then, and
            # before it they are left to the fit, as skorch leaves them
            given = {key.partition("__")[0] for key in current if "__" in key}
            prefixes = {prefix for prefix in prefixes
                        if prefix in current and prefix not in own or prefix in given}
        # (module__* were refused before: not named among the prefixes there are)
        check_nested_params(self, params, routed={
            *self.prefixes_, *self._modules, *self._criteria, *self._optimizers,
            "criterion", "optimizer", "train_split",
            *(prefix for prefix in prefixes if prefix not in own)} - {"module"})

    def _refuse_module_settings(self, names):
        # skorch would rebuild a fitted net's module at once, from weights: the fine-tuning
        # would be lost for a setting the module does not take
        given = sorted(name for name in names
                       if name == "module" or name.startswith("module__"))
        if given:
            raise ValueError(
                f"{', '.join(given)}: {type(self).__name__} builds its module from weights "
                "(with gradients and num_heads) and the head settings (pooling, final_norm, "
                "freeze_encoder, drop_path_rate), and takes no module__ settings (nor another "
                "module); set those parameters instead")

    def get_default_callbacks(self):
        """skorch's default callbacks, then the learning-rate schedule.

        Returns
        -------
        list of tuple
            skorch's ``(name, callback)`` pairs, its ``print_log`` showing 4 significant
            digits in a fixed width (``PrintLog(floatfmt="10.4g")``), then
            ``("lr_schedule", WarmupCosineLR())``.
        """
        return self._default_callbacks

    @property
    def _default_callbacks(self):
        # skorch's get_params reads the default callbacks' settings here, not from
        # get_default_callbacks: its PrintLog's '.4f' was reported (and given back by
        # set_params(**get_params())), and the schedule's settings only once initialized.
        # skorch's 4 decimals printed the default learning rates (6.25e-5 at batch 16) as
        # 0.0001 or 0.0000, as if nothing trained. The width of 10 ('-1.234e-05' is the
        # widest) keeps the columns aligned: skorch tabulates each epoch's row alone
        defaults = [(name, PrintLog(floatfmt="10.4g") if name == "print_log" else callback)
                    for name, callback in super()._default_callbacks]
        return [*defaults, ("lr_schedule", WarmupCosineLR())]

    def initialize_callbacks(self):
        """skorch's callbacks; warns when a user's scheduler would be overridden.

        A warning is given when the built-in ``lr_schedule`` is on and a skorch
        ``LRScheduler`` is among the callbacks: the built-in schedule would override its rates.

        Returns
        -------
        self
            The net, its ``callbacks_`` set.
        """
        self._check_callbacks()
        super().initialize_callbacks()
        if not self.__dict__.get("_setting_params_", False):  # set_params checks once done
            self._warn_scheduler_overridden()
        return self

    def _warn_scheduler_overridden(self):
        names = dict(self.callbacks_)
        if isinstance(names.get("lr_schedule"), WarmupCosineLR):
            others = [name for name, callback in self.callbacks_
                      if isinstance(callback, LRScheduler)]
            if others:
                warn_user(
                    f"the callback {others[0]!r} sets learning rates that the built-in warm-up "
                    "and cosine schedule overrides at every batch; pass "
                    "callbacks__lr_schedule=None to use your scheduler instead")

    def _check_callbacks(self):
        """Refuse ``callbacks`` that are no list (skorch failed with "can only concatenate list
        (not "EarlyStopping") to list"), and a list holding something that is neither a
        callback (an instance or its class) nor a ``(name, callback)`` pair."""
        callbacks = self.callbacks
        if callbacks is None or (isinstance(callbacks, str) and callbacks == "disable"):
            return
        if isinstance(callbacks, tuple) and not callbacks:  # skorch takes it as none
            return
        if not isinstance(callbacks, list):
            example = (f"callbacks=[{type(callbacks).__name__}(...)]"
                       if isinstance(callbacks, Callback) else "callbacks=[EarlyStopping()]")
            raise ValueError(
                f"callbacks={callbacks!r} is not a list: pass a list of callbacks (or of "
                f"(name, callback) pairs), e.g. {example} for one, None, or 'disable' to turn "
                "skorch's default callbacks off")
        for index, item in enumerate(callbacks):
            # skorch failed at initialize: "'int' object has no attribute 'set_params'", or
            # "not enough values to unpack" for a pair of other than two items
            callback = item
            if isinstance(item, (tuple, list)):
                if len(item) != 2 or not isinstance(item[0], str):
                    raise ValueError(
                        f"callbacks[{index}]={item!r} is not a (name, callback) pair: give "
                        "the callbacks, or pairs of a name (a str) and a callback, such as "
                        "('stop', EarlyStopping())")
                callback = item[1]
            if callback is not None and not _is_callback(callback):
                raise ValueError(
                    f"callbacks[{index}] holds {type_with_article(callback)} ({callback!r}), "
                    "which is not a callback: give skorch callbacks (instances, such as "
                    "EarlyStopping(), or their classes), or (name, callback) pairs")

    def _other_estimators(self, key):
        """``key`` with the fine-tuner it belongs to, when it is the other one's parameter
        (``class_weight`` given to the regressor had been taken for a misspelt ``weights``)."""
        # imported here: the fine-tuners' module imports this one
        from .finetune import BrainJEPAClassifier, BrainJEPARegressor

        for other in (BrainJEPAClassifier, BrainJEPARegressor):
            if (other is not type(self) and not isinstance(self, other)
                    and key in inspect.signature(vars(other)["__init__"]).parameters):
                return f"{key} (a parameter of {other.__name__}, not of {type(self).__name__})"
        return None

    def _closest(self, key, names):
        """The parameter ``key`` resembles, or None: a prefixed key by its prefix
        (``optimzer__lr``: ``optimizer__lr``), another among ``names``."""
        prefix, separator, rest = key.partition("__")
        if separator:
            prefixes = [p.rstrip("_") for p in self.prefixes_]
            close = difflib.get_close_matches(prefix, prefixes, n=1, cutoff=0.6)
            return f"{close[0]}__{rest}" if close else None
        close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
        return close[0] if close else None

    def _validate_params(self):
        """skorch's check of the arguments it does not know, naming the closest parameters.

        skorch answered ``BrainJEPAClassifier(max_epoch=3)`` at ``fit`` with "__init__() got
        unexpected argument(s) max_epoch. Either you made a typo, or you added new arguments in
        a subclass; ...", without saying which parameter was meant.
        """
        try:
            super()._validate_params()
        except ValueError as error:
            first, *rest = str(error).split("\n")
            if "got unexpected argument(s)" not in first:
                raise
            unexpected = sorted(
                key for key in self._params_to_validate
                if not key.endswith("_") and not any(key.startswith(p) for p in self.prefixes_))
            names = [name for name in self._get_param_names()
                     if name not in unexpected and "__" not in name]
            guesses = [self._other_estimators(key)
                       or (f"{key} (did you mean {close}?)" if close else key)
                       for key in unexpected for close in [self._closest(key, names)]]
            first = (f"{type(self).__name__} got unexpected argument(s): "
                     f"{', '.join(guesses) or first}. Its parameters are its constructor's "
                     f"(help({type(self).__name__})) and skorch's prefixed ones (optimizer__*, "
                     "iterator_train__*, callbacks__*, ...)")
            raise ValueError("\n".join([first, *rest])) from None

    def get_params_for(self, prefix):
        """skorch's parameters for ``prefix``; the loaders' workers also start inside joblib's,
        and ignore SIGTERM.

        Parameters
        ----------
        prefix : str
            A component's name, such as ``"iterator_train"`` or ``"optimizer"``.

        Returns
        -------
        dict
            skorch's parameters for ``prefix``; for the loaders, with the platform's default
            multiprocessing context added when workers are asked for in a process whose start
            method is joblib's ``"loky"`` (see :func:`~brainjepa_sk.train.data.worker_context`)
            and no context is set, a ``worker_init_fn`` that makes the workers ignore
            SIGTERM when workers are asked for and none is set, and ``batch_size`` (the
            net's, unless the loader has its own) as a Python ``int``.
        """
        params = super().get_params_for(prefix)
        if prefix not in ("iterator_train", "iterator_valid"):
            return params
        batch_size = params.get("batch_size", self.batch_size)
        if isinstance(batch_size, numbers.Integral) and not isinstance(batch_size, bool):
            # torch's DataLoader takes no NumPy integer (a grid over np.arange sets one): it
            # refused batch_size=np.int64(8) with "... but got batch_size=8"
            params["batch_size"] = int(batch_size)
        workers = params.get("num_workers", 0)
        if params.get("multiprocessing_context") is None:
            context = worker_context(workers)
            if context is not None:
                params["multiprocessing_context"] = context
        if workers > 0 and params.get("worker_init_fn") is None:
            # a scheduler's SIGTERM reaches every process of the job: a worker it ended would
            # fail the batch the fit finishes before it stops (torch raises on its exit)
            params["worker_init_fn"] = ignore_sigterm
        return params
