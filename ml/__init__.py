"""Pure machine learning for brain MRI classification: no Django, no Celery.

One module per stage: preprocessing -> data -> model -> train -> evaluate ->
inference, plus the model registry that workers follow.
"""
