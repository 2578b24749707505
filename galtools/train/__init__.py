"""Training of registered models from galaxy array files on disk (``galprep train-batch``).

:mod:`~galtools.train.data` streams and plans the batches, :mod:`~galtools.train.loop` runs
the steps, checkpoints and resumes, :mod:`~galtools.train.checkpoint` and
:mod:`~galtools.train.report` write the run's files.
"""
