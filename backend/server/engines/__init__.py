"""Engines: the generators the server runs, behind one small interface."""
from .base import Engine, EngineInputError, JobCancelled, JobContext, AdmittedJob
from .registry import EngineNotFound, get, load_spec, names, register

__all__ = ["Engine", "EngineInputError", "JobCancelled", "JobContext", "AdmittedJob",
           "EngineNotFound", "get", "load_spec", "names", "register"]
