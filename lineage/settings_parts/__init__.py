"""The topical parts of Lineage's settings; `lineage/settings.py` (the settings module Django loads) lists them
and imports them in order."""
