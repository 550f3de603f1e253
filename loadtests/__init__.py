"""Load tests: locust users that behave like the lab robots, a pass/fail check and a capacity sweep."""
