"""The bpy-free core of the add-on, imported by both ends of the wire.

``protocol`` is the contract between the add-on and the server (both import it,
the add-on zip ships it); ``conventions`` holds the facts the models share
(keypoint layout, no-surface depth). Nothing here imports bpy or torch; see
docs/architecture.md for the layers."""
