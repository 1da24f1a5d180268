"""bpy layer of the GUI: preferences, properties, operators, panels, job runner."""
