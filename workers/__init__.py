"""Celery workers: the classification task, model loading and the client that reports to the site.

Nothing here imports Django: a worker host needs the broker, the site's URL and a
secret, never the database or the media folder.
"""
