"""The radiologists' reading service: a FastAPI app (JSON API + server-rendered page).

Build it with :func:`mammotriage.api.app.create_app`; ``mammotriage serve`` runs it. Imports
nothing heavy at package import (no torch, no FastAPI until ``app`` is imported).
"""
