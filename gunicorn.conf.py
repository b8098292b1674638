"""Gunicorn settings, read from the working directory by every gunicorn started there:
`make run` (webapp/runstack.py) and the container (Dockerfile, docker-compose.yml).

The access log names the path without its query string (%(U)s, not %(r)s) and leaves
out the Referer: a patient search (`/patients/?q=<MRN>`), an API filter
(`?external_id=<MRN>`) or the login page's `?next=` would otherwise write MRNs to a
log that is kept and shipped far more widely than the database.
"""

access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'
