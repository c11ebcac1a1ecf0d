"""The demo story: the data, people and steps that `manage.py seed_demo` plays through the real services,
so a newcomer finds a platform with history (see `story.py`). The rows in `data/` were written for the
demo: support tickets labelled by intent and short support instruction/answer pairs. `history.py` writes the
dashboards' year of generated history; `fees.py` the demo credit and settled fees."""
