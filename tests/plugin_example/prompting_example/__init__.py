"""Example plug-ins for the prompting validator (see docs/plugins.md)."""
