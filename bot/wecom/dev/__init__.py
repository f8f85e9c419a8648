"""A local WeCom-compatible server and the one-machine add-friend loop, for the demo and tests."""
