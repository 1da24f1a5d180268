"""The 2D warp behind the ``preview`` engine (backend/server/engines/preview.py): reference
preparation, bone solving, linear-blend skinning, compositing. Knows nothing of the
server: it raises ``models.errors.InputError`` naming the protocol field."""
