"""Training of registered models from galaxy array files on disk (``galprep train-batch``).

:mod:`~galtools.train.rundir` turns a model's declarations into the run directory's config
(create, resume, restart), :mod:`~galtools.train.data` streams and plans the batches,
:mod:`~galtools.train.recipe` holds the settings (one frozen object, the command's defaults)
and each model's recipe, :mod:`~galtools.train.loop` runs the steps and calls the hooks of
:mod:`~galtools.train.hooks` (recording, NaN guard, TensorBoard, learning rate, early stop,
samples, checkpoints),
:mod:`~galtools.train.evaluate` validates, :mod:`~galtools.train.closed_form` fits closed-form
models, :mod:`~galtools.train.checkpoint` and :mod:`~galtools.train.report` write the run's
files.
"""
