"""Brain MRI classification: pure machine learning, no Django, no Celery.

One module per stage: preprocessing -> data -> model -> train -> evaluate ->
inference, plus the stdlib-only model registry that workers poll between tasks.
Importing this package (or `ml.registry`, `ml.labels`, `ml.errors`) never imports
TensorFlow; only `ml.model`, `ml.train` and `ml.inference` do, lazily.
"""
