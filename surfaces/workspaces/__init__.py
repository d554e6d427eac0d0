"""Workspaces: a user's Space and chats — creating them once (``Rooms``), the DM flow
(``Onboarding``), and rebuilding them from Matrix (``reconcile``)."""

from surfaces.workspaces.onboarding import Onboarding
from surfaces.workspaces.reconcile import ReconcileReport, reconcile
from surfaces.workspaces.rooms import ChatLimitError, Rooms

__all__ = ["ChatLimitError", "Onboarding", "ReconcileReport", "Rooms", "reconcile"]
