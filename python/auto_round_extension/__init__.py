"""Compatibility namespace: the module paths AutoRound's extension uses, served by ark."""
