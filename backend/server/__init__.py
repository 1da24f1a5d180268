"""The Inhabit job server (``inhabit serve``): ROUTER socket, job queue, workers."""
