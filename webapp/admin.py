"""The admin site, for superusers only; clinic staff work in the portal.

Django's admin edits any row of any model it shows, and its user pages let anyone who may
change users make themselves a superuser. Scoping every queryset, foreign-key choice,
inline and auth page to one organisation would leave one missed case as a leak of another
clinic's patients, so the admin stays an operator's tool and the portal (which scopes
every view to the caller's organisation) is the staff's: patients, results, reviews, the
export and the audit log.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest


class SuperuserAdminSite(admin.AdminSite):
    def has_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)


class SuperuserAdminConfig(AdminConfig):
    default_site = "webapp.admin.SuperuserAdminSite"
